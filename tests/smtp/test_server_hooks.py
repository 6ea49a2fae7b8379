"""bench.smtp.server calls a handler's aiosmtpd-shaped hooks: the same handler on this server
and on aiosmtpd (FastSMTP) makes the same conversation, hooks are looked up once per server, a
missing hook means the server's default, and the envelope is reset after each transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import pytest

from bench.smtp.aioserver import FastSMTP
from bench.smtp.server import FastServerProtocol, server_factory

HELLO = b"EHLO c.test\r\n"


class Transport:
    def __init__(self) -> None:
        self.out = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 4025) if name == "peername" else default


def connect(handler: object) -> tuple[FastServerProtocol, Transport]:
    proto = server_factory(handler, hostname="h.test", banner="test")()
    t = Transport()
    proto.connection_made(cast(asyncio.Transport, t))
    t.out = b""
    return proto, t


def say(proto: FastServerProtocol, t: Transport, data: bytes) -> list[str]:
    t.out = b""
    proto.data_received(data)
    return t.out.decode().splitlines()


class Recorder:
    """Takes recipients of one domain, keeps copies of each message's envelope."""

    def __init__(self) -> None:
        self.got: list[tuple[str | None, list[str], bytes]] = []
        self.peers: list[Any] = []

    def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, opts: Any) -> str:
        self.peers.append(session.peer)
        envelope.mail_from = address
        return "250 2.1.0 sender ok"

    def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, opts: Any) -> str:
        if not address.endswith("@ok.test"):
            return f"550 5.1.1 <{address}>: no"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 rcpt ok"

    def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return f"250 2.0.0 queued as {len(self.got)}"


MESSAGE = (
    b"MAIL FROM:<a@x.test>\r\nRCPT TO:<u@no.test>\r\nRCPT TO:<u@ok.test>\r\nDATA\r\n"
    b"hello\r\n..dot\r\n.\r\n"
)


async def test_hooks_answer_and_the_envelope_is_reset_after_each_message() -> None:
    rec = Recorder()
    proto, t = connect(rec)
    say(proto, t, HELLO)
    replies = say(proto, t, MESSAGE + MESSAGE)
    assert replies[:5] == [
        "250 2.1.0 sender ok",
        "550 5.1.1 <u@no.test>: no",
        "250 2.1.5 rcpt ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 queued as 1",
    ]
    assert replies[9] == "250 2.0.0 queued as 2"  # not a nested MAIL: the envelope was reset
    assert rec.got == [("a@x.test", ["u@ok.test"], b"hello\r\n.dot\r\n")] * 2
    assert rec.peers == [("127.0.0.1", 4025)] * 2


async def test_a_refused_sender_leaves_no_transaction() -> None:
    class Refuse:
        def handle_MAIL(self, *args: Any) -> str:  # does not set envelope.mail_from
            return "550 5.7.1 not you"

    proto, t = connect(Refuse())
    say(proto, t, HELLO)
    assert say(proto, t, b"MAIL FROM:<a@x.test>\r\nRCPT TO:<u@ok.test>\r\n") == [
        "550 5.7.1 not you",
        "503 5.5.1 Error: need MAIL command",
    ]


async def test_without_hooks_the_defaults_answer() -> None:
    proto, t = connect(object())
    greeting = say(proto, t, HELLO)
    assert greeting[0] == "250-h.test" and "250-PIPELINING" in greeting
    replies = say(proto, t, MESSAGE + b"VRFY <u@ok.test>\r\nRSET\r\nNOOP\r\nQUIT\r\n")
    assert replies == [
        "250 2.1.0 Ok",
        "250 2.1.5 Ok",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 OK",
        "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery",
        "250 2.0.0 OK",
        "250 2.0.0 OK",
        "221 2.0.0 Bye",
    ]
    assert t.closed


async def test_the_hooks_of_the_rarer_commands() -> None:
    class Chatty:
        def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
            session.host_name = hostname
            return f"250 hi {hostname}"

        async def handle_EHLO(
            self, server: Any, session: Any, envelope: Any, hostname: str, lines: list[str]
        ) -> list[str]:
            session.host_name = hostname
            return [*lines[:-1], "250-XFOO", lines[-1]]

        def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
            return f"250 2.1.5 <{address}>"

        def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str | None) -> str:
            return f"250 2.0.0 noop {arg}"

        def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 2.0.0 reset"

        def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
            return "221 2.0.0 so long"

    proto, t = connect(Chatty())
    assert say(proto, t, b"HELO c.test\r\n") == ["250 hi c.test"]
    assert say(proto, t, HELLO)[-2:] == ["250-XFOO", "250 HELP"]
    replies = say(proto, t, b"VRFY <u@x.test>\r\nNOOP x\r\nRSET\r\nQUIT\r\n")
    assert replies == [
        "250 2.1.5 <u@x.test>",
        "250 2.0.0 noop x",
        "250 2.0.0 reset",
        "221 2.0.0 so long",
    ]


async def test_an_ehlo_hook_that_sets_no_host_name_leaves_the_session_ungreeted() -> None:
    class Forgetful:
        def handle_EHLO(self, server: Any, session: Any, envelope: Any, *rest: Any) -> list[str]:
            return ["250 hello"]

    proto, t = connect(Forgetful())
    assert say(proto, t, HELLO + b"MAIL FROM:<a@x.test>\r\n") == [
        "250 hello",
        "503 5.5.1 Error: send HELO first",
    ]


async def test_a_failing_or_waiting_hook_is_a_500_and_the_connection_goes_on() -> None:
    class Broken:
        def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, o: Any
        ) -> str:
            if address.startswith("bad"):
                raise RuntimeError("boom")
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 Ok"

        async def handle_DATA(self, *args: Any) -> str:
            await asyncio.sleep(0)  # waits: this server cannot
            return "250 never"

    proto, t = connect(Broken())
    say(proto, t, HELLO)
    replies = say(
        proto,
        t,
        b"MAIL FROM:<a@x.test>\r\nRCPT TO:<bad@ok.test>\r\nRCPT TO:<u@ok.test>\r\n"
        b"DATA\r\nx\r\n.\r\nMAIL FROM:<a@x.test>\r\n",
    )
    assert replies == [
        "250 2.1.0 Ok",
        "500 5.3.0 Error: (RuntimeError) handler failed",
        "250 2.1.5 Ok",
        "354 End data with <CR><LF>.<CR><LF>",
        "500 5.3.0 Error: (RuntimeError) handler failed",
        "250 2.1.0 Ok",  # the failed message's transaction is over
    ]


async def test_a_coroutine_hook_that_never_waits_is_served() -> None:
    class Async:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 2.0.0 async ok"

    proto, t = connect(Async())
    say(proto, t, HELLO)
    assert say(proto, t, MESSAGE)[-1] == "250 2.0.0 async ok"


async def test_hooks_are_looked_up_once_per_server() -> None:
    rec = Recorder()
    factory = server_factory(rec, hostname="h.test", banner="test")
    rec.handle_DATA = lambda *args: "554 replaced"  # type: ignore[method-assign]
    proto = factory()
    t = Transport()
    proto.connection_made(cast(asyncio.Transport, t))
    assert say(proto, t, HELLO + MESSAGE)[-1] == "250 2.0.0 queued as 1"


# -- the same handler on aiosmtpd ----------------------------------------------------------
@pytest.fixture
async def servers() -> AsyncIterator[Callable[[object], Any]]:
    started: list[asyncio.AbstractServer] = []
    loop = asyncio.get_running_loop()

    async def start(handler: object) -> tuple[int, int]:
        fast = await loop.create_server(
            server_factory(handler, hostname="h.test", banner="test"), "127.0.0.1", 0
        )
        aio = await loop.create_server(
            lambda: FastSMTP(handler, hostname="h.test", decode_data=False), "127.0.0.1", 0
        )
        started.extend((fast, aio))
        return fast.sockets[0].getsockname()[1], aio.sockets[0].getsockname()[1]

    yield start
    for server in started:
        server.close()


async def _replies(port: int, data: bytes, n: int) -> list[bytes]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    await r.readline()
    w.write(data)
    out = []
    while len(out) < n:
        line = await asyncio.wait_for(r.readline(), 5)
        if line[3:4] != b"-":
            out.append(line)
    w.close()
    return out


class Constant(Recorder):
    def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        super().handle_DATA(server, session, envelope)
        return "250 2.0.0 queued"


async def test_one_handler_answers_alike_on_both_servers(servers: Any) -> None:
    rec = Constant()
    fast, aio = await servers(rec)
    data = HELLO + MESSAGE + MESSAGE
    got = [await _replies(port, data, 11) for port in (fast, aio)]
    assert got[0][1:] == got[1][1:]  # all but the EHLO (this server says more)
    assert [m[:2] for m in rec.got] == [("a@x.test", ["u@ok.test"])] * 4
    assert {m[2] for m in rec.got} == {b"hello\r\n.dot\r\n"}
