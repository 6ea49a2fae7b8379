"""The fake MTA's relay: what it sends is what it was given, on either client.

A message with one recipient goes out on mailsla's pipelined client, one with several on
aiosmtplib; the destination here is plain aiosmtpd, which records what it received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest
import uvloop
from aiosmtpd.smtp import SMTP
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import example, given
from hypothesis import strategies as st

from bench.smtp.replies import MAX_LINE
from bench.timing.pacer import Pacer
from fakemta.relay import QueuedMessage, Relay, wire
from fakemta.relayclient import RelayConnection, Sent, _Replies
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import free_port, until


@given(st.binary(max_size=200) | st.text("\r\n.ab", max_size=60).map(str.encode))
@example(b"")
@example(b".")
@example(b".\r\n.")
@example(b"a\rb\nc\r\n\r\n.d\n.\r")
def test_wire_is_what_aiosmtplib_sends(content: bytes) -> None:
    """Line endings made CRLF, a final CRLF, leading dots doubled: aiosmtplib's own rules."""
    assert wire(content) == PERIOD_REGEX.sub(b"..", normalize_message_line_endings(content))


class _Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, list[str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        self.arrived.set()
        return "250 2.0.0 Ok"


@pytest.fixture
async def relayed() -> AsyncIterator[tuple[FakeMta, _Recorder]]:
    rec = _Recorder()
    loop = asyncio.get_running_loop()
    dest = await loop.create_server(lambda: SMTP(rec), "127.0.0.1", 0)
    mta = FakeMta(
        FakeMtaConfig(relay_host="127.0.0.1", relay_port=dest.sockets[0].getsockname()[1])
    )
    await mta.start()
    yield mta, rec
    await mta.stop()
    dest.close()
    await dest.wait_closed()


BODY = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nplain\r\n.\r\nlast"


@pytest.mark.parametrize("rcpts", [["a@remote.test"], ["a@remote.test", "b@remote.test"]])
async def test_relayed_mail_is_what_was_submitted(
    relayed: tuple[FakeMta, _Recorder], rcpts: list[str]
) -> None:
    mta, rec = relayed
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False, timeout=10)
    await client.connect()
    await client.sendmail("s@sender.test", rcpts, BODY)
    await client.quit()
    await asyncio.wait_for(rec.arrived.wait(), 10)
    await until(lambda: mta.relay.stats.relayed == 1)
    assert rec.got == [("s@sender.test", rcpts, BODY + b"\r\n")]
    assert mta.relay.stats.errors == {}


async def test_a_refused_recipient_bounces_on_the_pipelined_path(
    relayed: tuple[FakeMta, _Recorder],
) -> None:
    mta, rec = relayed
    refuse: Any = rec  # aiosmtpd's RCPT hook, refusing everyone for good

    async def handle_RCPT(server: object, session: object, envelope: Any, addr: str, o: Any) -> str:
        return "550 5.1.1 no such user"

    refuse.handle_RCPT = handle_RCPT
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False, timeout=10)
    await client.connect()
    await client.sendmail("s@sender.test", ["a@remote.test"], BODY)
    await client.quit()
    await until(lambda: mta.relay.stats.bounced == 1)
    assert mta.relay.stats.errors == {"rcpt 550": 1} and rec.got == []


# -- the relay's pipelined client against a scripted server ------------------------------
class _Scripted(asyncio.Protocol):
    """Answers each complete chunk it reads with the next scripted reply; logs what it read."""

    def __init__(self, replies: list[bytes], log: list[bytes]) -> None:
        self.replies, self.log = list(replies), log

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t: Any = transport
        self.t.write(b"220 scripted\r\n")

    def data_received(self, data: bytes) -> None:
        self.log.append(data)
        reply = self.replies.pop(0) if self.replies else b""
        reply, close, _ = reply.partition(b"CLOSE")  # "...CLOSE": reply, then hang up
        if reply:
            self.t.write(reply)
        if close:
            self.t.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.log.append(b"<closed>")


async def _scripted(replies: list[bytes]) -> tuple[RelayConnection, list[bytes], Any]:
    log: list[bytes] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Scripted(replies, log), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return RelayConnection("127.0.0.1", port, "mta.test", 5.0), log, server


EHLO_PIPELINING = b"250-scripted\r\n250 PIPELINING\r\n"


async def test_relay_client_pipelines_the_envelope_and_sends_the_body_once() -> None:
    conn, log, server = await _scripted(
        [EHLO_PIPELINING, b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    )
    assert await conn.send("a@x.test", "b@y.test", b"hi\r\n") == Sent(250)
    assert log == [
        b"EHLO mta.test\r\n",
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n",  # one write
        b"hi\r\n.\r\n",
    ]
    conn.close()
    server.close()


async def test_relay_client_ends_a_data_taken_after_a_refused_rcpt_empty() -> None:
    """A server that answers 354 although it refused the only recipient: the client sends an
    empty end of data (never the body), reports the RCPT's refusal, and resets."""
    conn, log, server = await _scripted(
        [EHLO_PIPELINING, b"250 ok\r\n450 busy\r\n354 go\r\n", b"554 no recipients\r\n", b"250\r\n"]
    )
    assert await conn.send("a@x.test", "b@y.test", b"secret\r\n") == Sent(450, "rcpt")
    assert log[2:] == [b".\r\n", b"RSET\r\n"] and conn.usable
    conn.close()
    server.close()


async def test_relay_client_without_pipelining_stops_at_the_first_refusal() -> None:
    conn, log, server = await _scripted([b"250 plain\r\n", b"550 no sender\r\n", b"250 ok\r\n"])
    assert await conn.send("a@x.test", "b@y.test", b"x\r\n") == Sent(550, "mail")
    assert log[1:] == [b"MAIL FROM:<a@x.test>\r\n", b"RSET\r\n"]
    conn.close()
    server.close()


async def test_relay_client_reports_a_dropped_connection_and_reconnects() -> None:
    conn, _, server = await _scripted([EHLO_PIPELINING, b"CLOSE"])
    assert await conn.send("a@x.test", "b@y.test", b"x\r\n") == Sent(0, error="disconnected")
    assert not conn.usable
    server.close()
    await server.wait_closed()
    assert await conn.send("a@x.test", "b@y.test", b"x\r\n") == Sent(0, error="refused")


async def test_relay_client_closes_a_connection_whose_ehlo_never_comes() -> None:
    conn, log, server = await _scripted([b""])  # greets, then never answers EHLO
    conn.timeout = 0.2
    assert await conn.send("a@x.test", "b@y.test", b"x\r\n") == Sent(0, error="timeout")
    assert not conn.usable
    await until(lambda: log == [b"EHLO mta.test\r\n", b"<closed>"])  # nothing left open
    server.close()


def test_a_held_message_is_never_released_before_its_delay() -> None:
    """On uvloop, as the fake MTA runs, the loop's millisecond timers (on a coarse clock)
    released holds up to 1 ms early."""
    released: dict[str, int] = {}
    submitted: dict[str, int] = {}

    class Recording(asyncio.Queue[QueuedMessage]):
        def put_nowait(self, item: QueuedMessage) -> None:
            released[item.qid] = time.monotonic_ns()
            super().put_nowait(item)

    async def hold(relay: Relay) -> None:
        relay._ready = Recording()
        for i in range(200):
            submitted[str(i)] = time.monotonic_ns()
            relay.submit(QueuedMessage(str(i), "a@x.test", ["b@y.test"], b"x\r\n"), 0.005)
            if i % 20 == 19:
                await asyncio.sleep(0.0013)  # submissions spread over the loop's milliseconds
        await until(lambda: len(released) == 200)
        await relay.stop()

    relay = Relay("127.0.0.1", 9, hostname="mta.test", workers=0)
    uvloop.run(hold(relay))
    early = [k for k in submitted if released[k] - submitted[k] < 5_000_000]
    assert early == [] and relay.stats.released_early == 0


def test_the_relay_counts_a_hold_let_go_before_its_end() -> None:
    """released_early, which the runs check, can see an early release."""
    relay = Relay("127.0.0.1", 9, hostname="mta.test", workers=0)
    msg = QueuedMessage("1", "a@x.test", ["b@y.test"], b"x\r\n")
    msg.due_ns = time.monotonic_ns() + 10**9
    got: list[QueuedMessage] = []
    relay._release(msg, got.append)
    assert got == [msg] and relay.stats.released_early == 1
    assert relay.stats.as_dict()["released_early"] == 1


async def test_relay_client_does_not_wait_on_a_connection_dropped_after_354() -> None:
    """The server says 354 and hangs up: the body is not written into the void and waited
    on for the whole timeout; the send fails at once and the next one reconnects."""
    conn, _, server = await _scripted([EHLO_PIPELINING, b"250 ok\r\n250 ok\r\n354 go\r\nCLOSE"])
    conn.timeout = 60.0
    sent = await asyncio.wait_for(conn.send("a@x.test", "b@y.test", b"x\r\n"), 5)
    assert sent == Sent(0, error="disconnected") and not conn.usable
    server.close()


async def test_relay_client_asks_nothing_of_a_connection_already_lost() -> None:
    """When the loss was read before the next command (a 354 and the hang-up in one read), no
    reply can come: it fails at once instead of after the whole timeout."""
    conn = RelayConnection("127.0.0.1", 9, "mta.test", 60.0)
    gone = _Replies(asyncio.get_running_loop())
    gone.connection_lost(None)
    with pytest.raises(ConnectionError, match="disconnected"):
        await asyncio.wait_for(conn._ask(gone, b"body\r\n.\r\n"), 5)


async def test_relay_client_keeps_a_refusal_when_the_server_hangs_up_after_it() -> None:
    """A 554 at the dot and a hang-up on the RSET: the message's outcome is the 554 (it
    bounces), not a failed connection (which would retry it)."""
    conn, _, server = await _scripted(
        [EHLO_PIPELINING, b"250 ok\r\n250 ok\r\n354 go\r\n", b"554 spam\r\n", b"CLOSE"]
    )
    assert await conn.send("a@x.test", "b@y.test", b"x\r\n") == Sent(554, "dot")
    assert not conn.usable  # closed, the next send opens another
    server.close()


async def test_relay_client_ends_a_connection_that_sends_a_line_that_is_no_reply() -> None:
    """A stray line would shift every later reply onto the wrong command: the connection
    ends ("protocol") instead of the body going after a reply meant for something else."""
    conn, log, server = await _scripted(
        [EHLO_PIPELINING, b"\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"250 queued\r\n"]
    )
    assert await conn.send("a@x.test", "b@y.test", b"x\r\n") == Sent(0, error="protocol")
    assert not conn.usable and b"x\r\n.\r\n" not in log
    server.close()


async def test_relay_client_ends_a_connection_that_sends_an_endless_line() -> None:
    """Read as the generator's client reads replies: a partial line past MAX_LINE is no
    SMTP server's, and is not buffered on and on."""
    conn, _, server = await _scripted([EHLO_PIPELINING, b"250 " + b"x" * (MAX_LINE + 1)])
    assert await conn.send("a@x.test", "b@y.test", b"x\r\n") == Sent(0, error="protocol")
    assert not conn.usable
    server.close()


async def test_relay_client_labels_a_refused_connection_as_the_generator_does() -> None:
    port = free_port()  # nothing listens there
    sent = await RelayConnection("127.0.0.1", port, "mta.test", 5.0).send("a@x.test", "b@y", b"")
    assert sent == Sent(0, error="refused")


async def test_relay_client_greets_with_helo_when_ehlo_is_refused() -> None:
    conn, log, server = await _scripted(
        [b"502 no ehlo\r\n", b"250 hello\r\n", *[b"250 ok\r\n"] * 2, b"354 go\r\n", b"250 q\r\n"]
    )
    assert await conn.send("a@x.test", "b@y.test", b"x\r\n") == Sent(250)
    assert log[:3] == [b"EHLO mta.test\r\n", b"HELO mta.test\r\n", b"MAIL FROM:<a@x.test>\r\n"]
    conn.close()
    server.close()


def test_a_failing_pacer_callback_does_not_strand_the_ones_after_it() -> None:
    called: list[int] = []
    errors: list[object] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: errors.append(ctx["exception"]))
        pacer = Pacer(loop)
        done = loop.create_future()

        def boom() -> None:
            raise RuntimeError("boom")

        pacer.call_later(0.001, boom)
        pacer.call_later(0.001, lambda: called.append(1))
        pacer.call_later(0.002, lambda: done.set_result(None))
        await asyncio.wait_for(done, 5)
        pacer.close()

    uvloop.run(go())
    assert called == [1] and [str(e) for e in errors] == ["boom"]


async def test_a_message_queued_after_the_relay_stopped_stays_in_the_queue() -> None:
    relay = Relay("127.0.0.1", 9, hostname="mta.test", workers=1)
    relay.start()
    await relay.stop()
    relay.submit(QueuedMessage("1", "a@x.test", ["b@y.test"], b"x\r\n"), 0.5)
    assert relay.stats.holding == 1 and relay._pacer is None  # no timer made after the stop
