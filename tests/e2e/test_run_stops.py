"""Every way a run is stopped writes a complete, honest result: SIGINT once and twice and
SIGTERM against a stalled system (both clients), and mail still on its way at the stop booked
as in flight, not lost by the system. Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.config.scenario import load as load_scenario
from bench.errors import ExitCode
from bench.run.results import Snapshot
from bench.run.runner import Runner
from tests.e2e.test_run import MAILSLA, ROOT, assert_accounted, result

QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
STALL_AT_DOT = (
    'fakemta.faults=[{stage="dot", kind="delay", probability=1.0, duration="const(10s)"}]'
)


def start(out: Path, *sets: str) -> subprocess.Popen[str]:
    """``mailsla run quickstart`` in the background, once it is sending (its first progress
    line, 5 s in: every send so far has started)."""
    args = [arg for s in sets for arg in ("--set", s)]
    proc = subprocess.Popen(
        [*MAILSLA, "run", str(QUICKSTART), "--no-live", "--out", str(out), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert "submitting to" in first, first
    progress = proc.stderr.readline()  # "[sending 5s] ...": the load has been going for 5 s
    assert "sending" in progress, progress
    return proc


def stop(proc: subprocess.Popen[str], *signals: signal.Signals) -> str:
    for sig in signals:
        proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert "Traceback" not in stderr, stderr
    return stderr


def check_stopped(out: Path, stderr: str, proc: subprocess.Popen[str], sig: str) -> dict[str, Any]:
    assert proc.returncode == 3, stderr
    doc = result(out)
    assert doc["run"]["status"] == "interrupted"
    assert doc["run"]["reason"] == f"interrupted ({sig})"
    assert_accounted(doc)
    assert doc["counts"]["undelivered"] == 0  # nothing is blamed on the system
    return doc


@pytest.mark.slow
@pytest.mark.parametrize(
    ("client", "signals", "name"),
    [
        ("pipelined", (signal.SIGINT,), "SIGINT"),
        ("pipelined", (signal.SIGINT, signal.SIGINT), "SIGINT"),
        ("pipelined", (signal.SIGTERM,), "SIGTERM"),
        ("aiosmtplib", (signal.SIGINT,), "SIGINT"),
    ],
)
def test_stopping_a_stalled_run_writes_its_result(
    tmp_path: Path, client: str, signals: tuple[signal.Signals, ...], name: str
) -> None:
    out = tmp_path / "out"
    proc = start(out, STALL_AT_DOT, "load.rate=20", f'load.client="{client}"')
    doc = check_stopped(out, stop(proc, *signals), proc, name)
    c = doc["counts"]
    # Every send was held at the dot: each ended failed (interrupted) at the dot, none lost.
    assert c["sent"] > 0
    assert c["failed"] + c["accepted"] == c["sent"]
    failed = {(f["stage"], f["error"]): f["count"] for f in doc["outcomes"]["failed"]}
    assert failed.get(("dot", "interrupted"), 0) == c["failed"] > 0
    for name_ in ("result.json", "metrics.hlog", "timeseries.csv"):
        assert (out / name_).is_file(), name_


@pytest.mark.slow
def test_mail_on_its_way_at_the_stop_is_not_lost(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start(out, 'fakemta.processing_delay="const(3s)"')
    doc = check_stopped(out, stop(proc, signal.SIGINT), proc, "SIGINT")
    c = doc["counts"]
    assert c["in_flight_at_stop"] > 0  # held 3 s in the fake MTA when the run stopped
    assert c["accepted"] == c["delivered"] + c["in_flight_at_stop"]
    checks = {ch["name"]: ch for ch in doc["sla"]["checks"]}
    assert checks["send_delay.max"]["pass"] is True  # mail in flight is not over the limit
    assert doc["availability"]["accepted_then_lost"] == 0


class KillMta:
    """An observer that kills the embedded fake MTA's process once mail has been accepted."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.killed = False

    def started(self, line: str) -> None:
        pass

    def update(self, snap: Snapshot) -> None:
        mta = self.runner._mta if self.runner is not None else None
        if not self.killed and mta is not None and snap.counts["accepted"] > 0:
            os.kill(mta._proc.pid, signal.SIGKILL)
            self.killed = True


async def test_the_embedded_fake_mta_dying_ends_the_run_with_its_reason(tmp_path: Path) -> None:
    sc = load_scenario(QUICKSTART, ['load.duration="20s"', "load.rate=50"])
    kill = KillMta()
    runner = Runner(sc, tmp_path / "out", kill)
    kill.runner = runner
    res = await runner.run()
    assert kill.killed
    assert res.exit_code == ExitCode.RUN and res.status == "error"
    assert res.reason == (
        "the embedded fake MTA died during the run (killed by SIGKILL); the mail it held is lost"
    )
    doc = result(tmp_path / "out")
    assert doc["run"]["reason"] == res.reason
    assert_accounted(doc)
    assert doc["counts"]["not_sent"] > 0  # it stopped then, not after the 20 s of load
