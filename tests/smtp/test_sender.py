"""The SMTP session: every outcome, labelled with the right stage, against real sockets."""

from __future__ import annotations

import pytest

from bench.smtp.aiosession import SmtpSession
from bench.smtp.options import SessionOptions
from tests.conftest import free_port
from tests.smtpscript import CLOSE, STALL, Script, ScriptedServer

MSG = b"Subject: t\r\nX-Mailsla-Id: 1\r\n\r\nbody\r\n"


async def _send(script: Script, timeout: float = 5.0) -> tuple[SmtpSession, object]:
    server = ScriptedServer(script)
    port = await server.start()
    session = SmtpSession("127.0.0.1", port, SessionOptions(ehlo="client.test", timeout=timeout))
    out = await session.send("a@sender.test", ["u@remote.test"], MSG)
    session.close()
    await server.stop()
    return session, out


async def test_accepted() -> None:
    script = Script()
    _, out = await _send(script)
    assert out.kind == "accepted" and out.code == 250 and out.accepted_ns > 0
    assert script.messages == [MSG + b".\r\n"]


@pytest.mark.parametrize(
    ("stage", "reply", "code"),
    [
        ("banner", "554 5.3.2 go away", 554),
        ("ehlo", "550 no hello", 550),
        ("mail", "451 4.3.0 busy", 451),
        ("rcpt", "550 5.1.1 no such user", 550),
        ("data", "554 5.5.1 no data for you", 554),
        ("dot", "552 5.3.4 too big", 552),
    ],
)
async def test_rejections_carry_stage_and_code(stage: str, reply: str, code: int) -> None:
    _, out = await _send(Script(**{stage: reply}))
    assert (out.kind, out.stage, out.code) == ("rejected", stage, code)


@pytest.mark.parametrize("stage", ["banner", "mail", "rcpt", "data", "dot"])
async def test_disconnect_is_a_failure_at_its_stage(stage: str) -> None:
    _, out = await _send(Script(**{stage: CLOSE}))
    assert (out.kind, out.stage) == ("failed", stage)
    assert out.error in ("disconnected", "reset")


@pytest.mark.parametrize("stage", ["banner", "mail", "dot"])
async def test_stall_is_a_timeout_at_its_stage(stage: str) -> None:
    _, out = await _send(Script(**{stage: STALL}), timeout=0.2)
    assert (out.kind, out.stage, out.error) == ("failed", stage, "timeout")


async def test_refused_connection() -> None:
    session = SmtpSession("127.0.0.1", free_port(), SessionOptions(ehlo="client.test", timeout=2))
    out = await session.send("a@sender.test", ["u@remote.test"], MSG)
    assert (out.kind, out.stage, out.error) == ("failed", "connect", "refused")
    assert session.connect_failures == 1


async def test_session_is_reused_and_reopened_after_failure() -> None:
    script = Script()
    server = ScriptedServer(script)
    port = await server.start()
    s = SmtpSession("127.0.0.1", port, SessionOptions(ehlo="client.test", timeout=5))
    for _ in range(3):
        assert (await s.send("a@s.test", ["u@remote.test"], MSG)).kind == "accepted"
    assert server.connections == 1
    script.rcpt = "421 4.3.2 closing"
    out = await s.send("a@s.test", ["u@remote.test"], MSG)
    assert (out.kind, out.stage, out.code) == ("rejected", "rcpt", 421)
    script.rcpt = "250 ok"
    assert (await s.send("a@s.test", ["u@remote.test"], MSG)).kind == "accepted"
    assert server.connections == 2
    await s.quit()
    await server.stop()
