"""Only mailsla's own mail is counted: forged, malformed and oversized identities thrown at a
running post office are foreign, never a delivery, and never get a 5xx."""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

import aiosmtplib

from bench.config.scenario import load as load_scenario
from bench.run.results import Snapshot
from bench.run.runner import Runner
from tests.e2e.test_run import ROOT


def forged(run_id: str, ident: bytes, tag: bytes | None) -> bytes:
    head = b"X-Mailsla-Run: " + run_id.encode() + b"\r\nX-Mailsla-Id: " + ident + b"\r\n"
    if tag is not None:
        head += b"X-Mailsla-Tag: " + tag + b"\r\n"
    return head + b"Subject: forged\r\n\r\nnot mailsla's\r\n"


class Forger:
    """An observer that, once the run is up, sends forged mail to its post office."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.replies: list[int] = []
        self.task: asyncio.Task[None] | None = None

    def started(self, line: str) -> None:
        self.task = asyncio.get_running_loop().create_task(self.forge())

    def update(self, snap: Snapshot) -> None:
        pass

    async def forge(self) -> None:
        assert self.runner is not None
        run_id = self.runner.run_id
        host, port = self.runner.system_info["postoffice"].rsplit(":", 1)
        copies = [
            forged(run_id, b"0000000001", b"0123456789abcdef"),  # an id in flight, wrong tag
            forged(run_id, b"0000000002", None),  # no tag at all
            forged(run_id, b"9999999999", b"0123456789abcdef"),  # the widest id there is
            forged(run_id, b"1" * 30, None),  # wider than mailsla writes
            forged("another-run", b"0000000003", b"0123456789abcdef"),
        ]
        async with aiosmtplib.SMTP(hostname=host, port=int(port)) as smtp:
            for msg in copies:
                # aiosmtplib raises on any refusal: each sendmail that returns got its 250s
                await smtp.sendmail("x@evil.test", ["user1@remote.test"], msg)
                self.replies.append(250)


async def test_forged_identities_are_foreign(tmp_path: Path) -> None:
    sc = load_scenario(
        ROOT / "scenarios" / "quickstart.toml",
        ['load.duration="2s"', "load.rate=50", 'fakemta.processing_delay="const(300ms)"'],
    )
    forger = Forger()
    runner = Runner(sc, tmp_path / "out", forger)
    forger.runner = runner
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = await runner.run()
    # A forged 9999999999 once sized the books: +1.2 GB. Nothing received sizes them now.
    grew_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib) / 1024
    assert grew_mib < 200, f"the process's peak grew by {grew_mib:.0f} MiB"
    assert forger.task is not None and forger.task.done() and forger.task.exception() is None
    assert len(forger.replies) == 5  # every forged message was taken with a 250
    c = res.doc["counts"]
    assert c["foreign"] == 5
    assert c["duplicate"] == 0
    assert c["delivered"] == c["accepted"] == 100
    assert res.doc["accounting"]["holds"] is True
    assert res.doc["metrics"]["send_delay"]["count"] == 100
    assert res.status == "completed"
