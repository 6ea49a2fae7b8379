"""Every smtp-sink-style fault of the fake MTA, as mailsla's own clients report it: the right
stage, and the right kind (an SMTP reply with its code, or a connection-level failure)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bench.config.delays import parse_delay
from bench.config.faults import StageFault
from bench.core.message import Identity
from bench.load.generator import make_session
from bench.observe.postoffice import PostOffice
from bench.smtp.options import SessionOptions
from bench.smtp.outcome import Outcome
from fakemta.server import FakeMta, FakeMtaConfig

CLIENTS = ("pipelined", "aiosmtplib")
STAGES = ("connect", "banner", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "dot")
KINDS = ("4xx", "5xx", "421", "disconnect", "stall")
TIMEOUT = 0.5  # the client's; a stall lasts longer
CODE = {"4xx": 451, "5xx": 554, "421": 421}


def expected(stage: str, kind: str) -> tuple[str, str, int | str]:
    """(outcome, stage seen by the client, code or error)."""
    seen = "banner" if stage == "connect" else stage
    if kind in CODE:
        return "rejected", seen, CODE[kind]
    return "failed", seen, "disconnected" if kind == "disconnect" else "timeout"


@pytest.fixture
async def po() -> AsyncIterator[PostOffice]:
    def sink(ident: Identity | None, mail_ns: int, received_ns: int) -> None:
        pass

    office = PostOffice("remote.test", sink)
    await office.start()
    yield office
    await office.stop()


async def _mta(po: PostOffice, fault: StageFault) -> FakeMta:
    mta = FakeMta(
        FakeMtaConfig(
            relay_host="127.0.0.1",
            relay_port=po.port,
            processing_delay=parse_delay("const(0ms)"),
            tls=fault.stage == "starttls",
            auth_users=(("u", "p"),) if fault.stage == "auth" else (),
            faults=(fault,),
        )
    )
    await mta.start()
    return mta


def _opts(stage: str) -> SessionOptions:
    return SessionOptions(
        ehlo="c.test",
        timeout=TIMEOUT,
        greeting_timeout=TIMEOUT,
        tls="required" if stage == "starttls" else "off",
        tls_verify=False,
        auth_user="u" if stage == "auth" else None,
        auth_password="p" if stage == "auth" else None,
    )


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("stage", "kind"), list(itertools.product(STAGES, KINDS)))
async def test_fault_seen_at_its_stage(po: PostOffice, client: str, stage: str, kind: str) -> None:
    duration = parse_delay("const(3s)") if kind == "stall" else None
    mta = await _mta(po, StageFault(stage, kind, 1.0, None, duration))
    try:
        session = make_session(client, "127.0.0.1", mta.port, _opts(stage), None)
        out: Outcome = await session.send(
            "a@x.test", ["user1@remote.test"], b"Subject: x\r\n\r\nx\r\n"
        )
        session.close()
    finally:
        await mta.stop()
    want = expected(stage, kind)
    got: tuple[str, str, Any] = (
        out.kind,
        out.stage,
        out.code if out.kind == "rejected" else out.error,
    )
    assert got == want, out
