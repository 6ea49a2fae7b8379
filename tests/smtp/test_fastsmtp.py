"""The fast address parser must agree with aiosmtpd's own on every input."""

from __future__ import annotations

import asyncio
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bench.smtp.aioserver import FastSMTP
from bench.smtp.limits import DEFAULT_LIMITS
from fakemta.server import FakeMta


class _Bare:
    """Just enough of an SMTP instance for _getaddr (it reads local_part_limit only)."""

    def __init__(self, limit: int) -> None:
        self.local_part_limit = limit


def _call(f: object, arg: str, limit: int) -> object:
    try:
        return f(_Bare(limit), arg)  # type: ignore[operator]
    except Exception as exc:  # aiosmtpd's parser raises on some inputs (e.g. '"'): so must we
        return ("raised", type(exc))


def both(arg: str, limit: int = 0) -> tuple[object, object]:
    return _call(FastSMTP._getaddr, arg, limit), _call(SMTP._getaddr, arg, limit)


VALID = [
    "<user@remote.test>",
    "<user@remote.test> SIZE=1024 BODY=8BITMIME",
    "<first.last+tag@sub.domain-x.example>",
    "<a@b>",
    "<o'hara@x.test>",
    "<weird!#$%&'*+/=?^_`{|}~-@x.test>",
]
INVALID = [
    "<>",
    "<user@remote.test",
    "user@remote.test",
    "<user@@remote.test>",
    "<.user@remote.test>",
    "<user.@remote.test>",
    "<us..er@remote.test>",
    '<"quoted local"@remote.test>',
    "<user@[127.0.0.1]>",
    "<user@-bad.test>",
    "<user@remote.test>trailing",
    "<@relay.test:user@remote.test>",
    "< user@remote.test >",
    "<user@remote.test>\tSIZE=1",
    "",
]


@pytest.mark.parametrize("arg", VALID + INVALID)
def test_agrees_on_known_cases(arg: str) -> None:
    fast, orig = both(arg)
    assert fast == orig


def test_the_fast_path_is_taken_for_ordinary_addresses() -> None:
    # If it were not, the test above would compare aiosmtpd with itself.
    assert FastSMTP._getaddr.__code__ is not SMTP._getaddr.__code__
    from bench.smtp.aioserver import _SIMPLE

    for arg in VALID:
        assert _SIMPLE.match(arg), arg


def test_local_part_limit_is_kept() -> None:
    arg = "<" + "a" * 70 + "@x.test>"
    fast, orig = both(arg, limit=64)
    assert fast == orig == (None, None)


ADDRESSY = st.text(alphabet="ab.@<>-+\"' \t[]:!_=1", max_size=24)


@settings(max_examples=3000, deadline=None)
@given(ADDRESSY)
@example("<a@b>x")
@example("<a.b@c-d.e> X=1")
def test_agrees_on_generated_inputs(arg: str) -> None:
    fast, orig = both(arg)
    assert fast == orig


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(
        r"\A<[a-z0-9.+-]{1,12}@[a-z0-9.-]{1,12}>( [A-Z]{1,5}=[0-9]{1,4})?\Z", fullmatch=True
    )
)
def test_agrees_on_generated_plausible_addresses(arg: str) -> None:
    fast, orig = both(arg)
    assert fast == orig


async def test_fake_mta_advertises_pipelining(fakemta: FakeMta) -> None:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=fakemta.port, local_hostname="c.test", start_tls=False
    )
    await client.connect()
    await client.ehlo()
    assert "pipelining" in client.esmtp_extensions
    await client.quit()


# -- one write per pipelined group -------------------------------------------------------
class _Handler:
    def __init__(self) -> None:
        self.contents: list[bytes] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.contents.append(envelope.original_content)
        return "250 2.0.0 Ok: queued"


class _CountingFast(FastSMTP):
    """FastSMTP that logs every write it makes."""

    writes: list[bytes]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        writer, real = self._writer, self._writer.write

        def write(data: bytes) -> None:
            self.writes.append(bytes(data))
            real(data)

        writer.write = write  # type: ignore[method-assign]


# Each step: what the client writes at once, and the reply code that ends the server's answer.
GROUPS = [
    (b"EHLO c.test\r\n", b"250 "),
    (b"MAIL FROM:<a@x.test>\r\nRCPT TO:<b@y.test>\r\nDATA\r\n", b"354 "),
    # body, then the next envelope in the same write, with a malformed RCPT
    (
        b"Subject: t\r\n\r\n..dotted\r\n.\r\nMAIL FROM:<a@x.test>\r\n"
        b"RCPT FROM:<c@y.test>\r\nRCPT TO:<c@y.test>\r\nDATA\r\n",
        b"354 ",
    ),
    (b"second\r\n.\r\nNOOP\r\nQUIT\r\n", b"221 "),
]


async def _transcript(proto: type[SMTP]) -> tuple[list[bytes], list[bytes], _Handler]:
    """Serve GROUPS with *proto*; returns the replies read after each group, the server's
    writes (for _CountingFast) and the handler."""
    handler, writes = _Handler(), []
    loop = asyncio.get_running_loop()

    def make() -> SMTP:
        # aiosmtpd's own with FastSMTP's message size limit (Postfix's), for the same EHLO
        extra = (
            {} if issubclass(proto, FastSMTP) else {"data_size_limit": DEFAULT_LIMITS.message_size}
        )
        p = proto(handler, hostname="s.test", **extra)
        p.writes = writes  # type: ignore[attr-defined]
        return p

    server = await loop.create_server(make, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = [await reader.readuntil(b"\r\n")]  # the greeting
    for data, last in GROUPS:
        writer.write(data)
        got = b""
        while not any(line.startswith(last) for line in got.split(b"\r\n")):
            got += await asyncio.wait_for(reader.read(4096), 5)
        replies.append(got)
    writer.close()
    server.close()
    await server.wait_closed()
    return replies, writes, handler


async def test_pipelined_replies_are_aiosmtpd_s_in_one_write_per_group() -> None:
    plain, _, h_plain = await _transcript(SMTP)
    fast, writes, h_fast = await _transcript(_CountingFast)
    assert fast == plain  # the same bytes in the same order
    assert h_fast.contents == h_plain.contents == [b"Subject: t\r\n\r\n.dotted\r\n", b"second\r\n"]
    groups = [w for w in writes if not w.startswith(b"220 ")]
    # EHLO (one multi-line reply); MAIL+RCPT+DATA; the 501 to the bad RCPT goes at once with
    # what was held, the rest with the 354; the body's 250 and NOOP's go with the 221
    assert [w.count(b"\r\n") for w in groups] == [len(plain[1].split(b"\r\n")) - 1, 3, 3, 2, 3]
    assert b"".join(groups) == b"".join(plain[1:])
