"""The pipelined client: replies matched to the right message, whatever each one gets."""

from __future__ import annotations

import asyncio

import pytest

from bench.smtp.options import SessionOptions
from bench.smtp.outcome import Outcome
from bench.smtp.pipesession import PipelinedSession, parse_ehlo
from fakemta.server import FakeMta
from tests.conftest import free_port
from tests.smtpscript import CLOSE, STALL, Script, ScriptedServer

PIPE_EHLO = "250-script.test\r\n250-PIPELINING\r\n250 8BITMIME"


def rule(stage: str, arg: bytes) -> str | None:
    """Each message's fate is written in its sender or body."""
    if stage == "mail" and b"defer" in arg:
        return "451 4.3.0 mail deferred"
    if stage == "rcpt" and b"nouser" in arg:
        return "550 5.1.1 no such user"
    if stage == "dot" and b"REJECTME" in arg:
        return "554 5.7.1 content rejected"
    if stage == "dot" and b"LATER" in arg:
        return "452 4.3.1 try later"
    return None


def msg(i: int, fate: str) -> tuple[str, list[str], bytes, tuple[str, str, int]]:
    sender, rcpts, body = f"s{i}@a.test", [f"u{i}@remote.test"], f"Id: {i}\r\n\r\nok\r\n"
    want = ("accepted", "dot", 250)
    if fate == "mail":
        sender, want = f"defer{i}@a.test", ("rejected", "mail", 451)
    elif fate == "rcpt":
        rcpts, want = [f"u{i}@remote.test", f"nouser{i}@remote.test"], ("rejected", "rcpt", 550)
    elif fate == "dot5":
        body, want = f"Id: {i}\r\n\r\nREJECTME\r\n", ("rejected", "dot", 554)
    elif fate == "dot4":
        body, want = f"Id: {i}\r\n\r\nLATER\r\n", ("rejected", "dot", 452)
    return sender, rcpts, body.encode(), want


FATES = ["ok", "mail", "ok", "rcpt", "dot5", "ok", "dot4", "ok", "ok", "rcpt", "mail", "ok"]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_replies_matched_to_messages_under_injected_errors(pipelining: bool) -> None:
    script = Script(ehlo=PIPE_EHLO, rule=rule)
    server = ScriptedServer(script)
    port = await server.start()
    session = PipelinedSession(
        "127.0.0.1", port, SessionOptions(ehlo="c.test", timeout=5, pipelining=pipelining)
    )
    cases = [msg(i, FATES[i % len(FATES)]) for i in range(60)]
    outs = await asyncio.gather(*(session.send(s, r, b) for s, r, b, _ in cases))
    got = [(o.kind, o.stage, o.code) for o in outs]
    assert got == [want for *_, want in cases]
    assert session.connects == 1 and server.connections == 1
    assert (session.proto is not None) and session.proto.pipelining is pipelining
    # exactly the accepted messages' bodies reached the server, in order: a message refused at
    # MAIL or at one of its recipients sent no DATA (nothing reached its other recipient)
    accepted = [b for s, r, b, want in cases if want[0] == "accepted"]
    assert [b for b in script.messages if b.endswith(b"ok\r\n.\r\n")] == [
        b + b".\r\n" for b in accepted
    ]
    refused_before_data = sum(1 for *_, want in cases if want[1] in ("mail", "rcpt"))
    assert len(script.messages) == len(cases) - refused_before_data
    assert script.rsets == refused_before_data
    await session.quit()
    await server.stop()


async def test_a_second_message_rides_with_the_first_body() -> None:
    """depth 2: body of message 1 and envelope of message 2 arrive in one write."""
    reads: list[bytes] = []

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 x\r\n")
        await r.readline()
        w.write(PIPE_EHLO.encode() + b"\r\n")
        # Envelope 1 (MAIL, RCPT, DATA) arrives as one write:
        reads.append(await r.readuntil(b"DATA\r\n"))
        w.write(b"250 ok\r\n250 ok\r\n354 go\r\n")
        # ...then body 1 with envelope 2:
        reads.append(await r.readuntil(b"DATA\r\n"))
        w.write(b"250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n")
        reads.append(await r.readuntil(b"\r\n.\r\n"))
        w.write(b"250 queued 2\r\n")
        await r.read()
        w.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    s = PipelinedSession("127.0.0.1", port, SessionOptions(ehlo="c.test", timeout=5))
    outs = await asyncio.gather(
        s.send("a@x.test", ["u@r.test"], b"one\r\n"), s.send("a@x.test", ["u@r.test"], b"two\r\n")
    )
    assert [o.kind for o in outs] == ["accepted", "accepted"]
    assert reads[0] == b"MAIL FROM:<a@x.test>\r\nRCPT TO:<u@r.test>\r\nDATA\r\n"
    assert reads[1] == b"one\r\n.\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<u@r.test>\r\nDATA\r\n"
    s.close()
    server.close()


async def _one_exchange(
    replies: list[tuple[bytes, bytes]], rcpts: list[str]
) -> tuple[list[bytes], Outcome]:
    """Send one message to a server that, for each (until, reply), reads up to *until* and
    answers *reply*; returns what it read at each step, and the message's outcome."""
    reads: list[bytes] = []
    done = asyncio.Event()

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"220 x\r\n")
        await r.readline()
        w.write(PIPE_EHLO.encode() + b"\r\n")
        for until, reply in replies:
            reads.append(await r.readuntil(until))
            w.write(reply)
        done.set()
        await r.read()
        w.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    s = PipelinedSession("127.0.0.1", port, SessionOptions(ehlo="c.test", timeout=5))
    out = await s.send("a@x.test", rcpts, b"body\r\n")
    async with asyncio.timeout(5):  # what follows the outcome (RSET) reaches the server
        await done.wait()
    s.close()
    server.close()
    return reads, out


async def test_multi_line_replies_to_every_stage_are_matched() -> None:
    reads, out = await _one_exchange(
        [
            (
                b"DATA\r\n",
                b"250-sender\r\n250 ok\r\n250-rcpt\r\n250 ok\r\n354-end with\r\n354 a dot\r\n",
            ),
            (b"\r\n.\r\n", b"554-5.7.1 rejected\r\n554 5.7.1 for a second reason\r\n"),
        ],
        ["u@r.test"],
    )
    assert reads[1] == b"body\r\n.\r\n"
    assert (out.kind, out.stage, out.code) == ("rejected", "dot", 554)
    assert out.error == "5.7.1 rejected\n5.7.1 for a second reason"  # the reply text, whole


async def test_several_recipients_send_data_once_all_have_answered() -> None:
    reads, out = await _one_exchange(
        [
            (b"RCPT TO:<v@r.test>\r\n", b"250 ok\r\n250 ok\r\n250 ok\r\n"),
            (b"DATA\r\n", b"354 go\r\n"),
            (b"\r\n.\r\n", b"250 queued\r\n"),
        ],
        ["u@r.test", "v@r.test"],
    )
    assert reads == [
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<u@r.test>\r\nRCPT TO:<v@r.test>\r\n",
        b"DATA\r\n",
        b"body\r\n.\r\n",
    ]
    assert (out.kind, out.stage, out.code) == ("accepted", "dot", 250)


async def test_one_refused_recipient_of_several_means_no_data_at_all() -> None:
    reads, out = await _one_exchange(
        [
            (b"RCPT TO:<v@r.test>\r\n", b"250 ok\r\n250 ok\r\n550 no such user\r\n"),
            (b"RSET\r\n", b"250 reset\r\n"),
        ],
        ["u@r.test", "v@r.test"],
    )
    assert reads[1] == b"RSET\r\n"  # no DATA: the accepted recipient gets nothing
    assert (out.kind, out.stage, out.code) == ("rejected", "rcpt", 550)


async def test_a_lone_dot_when_the_only_recipient_was_refused_but_data_taken() -> None:
    """RFC 2920: DATA accepted although no recipient was: end it with a lone dot."""
    reads, out = await _one_exchange(
        [
            (b"DATA\r\n", b"250 ok\r\n550 no such user\r\n354 go\r\n"),
            (b".\r\n", b"554 no valid recipients\r\n"),
        ],
        ["u@r.test"],
    )
    assert reads[1] == b".\r\n"
    assert (out.kind, out.stage, out.code) == ("rejected", "rcpt", 550)


@pytest.mark.parametrize(("stage", "want"), [("rcpt", "rcpt"), ("dot", "dot"), ("data", "data")])
async def test_disconnect_fails_every_message_in_flight(stage: str, want: str) -> None:
    server = ScriptedServer(Script(ehlo=PIPE_EHLO, **{stage: CLOSE}))
    port = await server.start()
    s = PipelinedSession("127.0.0.1", port, SessionOptions(ehlo="c.test", timeout=5))
    outs = await asyncio.gather(*(s.send("a@x.test", ["u@r.test"], b"b\r\n") for _ in range(3)))
    assert outs[0].kind == "failed" and outs[0].stage == want
    assert all(o.kind == "failed" and o.error in ("disconnected", "reset") for o in outs)
    await server.stop()


async def test_timeout_and_refused_and_not_smtp() -> None:
    server = ScriptedServer(Script(ehlo=PIPE_EHLO, dot=STALL))
    port = await server.start()
    s = PipelinedSession("127.0.0.1", port, SessionOptions(ehlo="c.test", timeout=0.2))
    out = await s.send("a@x.test", ["u@r.test"], b"b\r\n")
    assert (out.kind, out.stage, out.error) == ("failed", "dot", "timeout")
    await server.stop()

    s = PipelinedSession("127.0.0.1", free_port(), SessionOptions(ehlo="c.test", timeout=1))
    out = await s.send("a@x.test", ["u@r.test"], b"b\r\n")
    assert (out.kind, out.stage, out.error) == ("failed", "connect", "refused")

    async def http(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await w.drain()
        await r.read()

    srv = await asyncio.start_server(http, "127.0.0.1", 0)
    s = PipelinedSession(
        "127.0.0.1", srv.sockets[0].getsockname()[1], SessionOptions(ehlo="c", timeout=1)
    )
    out = await s.send("a@x.test", ["u@r.test"], b"b\r\n")
    assert (out.kind, out.stage, out.error) == ("failed", "banner", "protocol")
    srv.close()


async def test_against_aiosmtpd_fake_mta(fakemta: FakeMta) -> None:
    s = PipelinedSession("127.0.0.1", fakemta.port, SessionOptions(ehlo="c.test", timeout=5))
    outs = await asyncio.gather(
        *(
            s.send("a@x.test", ["u@remote.test"], f"Id: {i}\r\n\r\nx\r\n".encode())
            for i in range(20)
        ),
        s.send("a@x.test", ["u@elsewhere.test"], b"x\r\n"),
    )
    assert [o.kind for o in outs[:20]] == ["accepted"] * 20
    assert (outs[20].kind, outs[20].stage, outs[20].code) == ("rejected", "rcpt", 550)
    await s.quit()


def test_parse_ehlo() -> None:
    exts = parse_ehlo(b"mx.test greets you\nPIPELINING\nSIZE 1000\nauth PLAIN LOGIN")
    assert exts == {"PIPELINING": "", "SIZE": "1000", "AUTH": "PLAIN LOGIN"}
