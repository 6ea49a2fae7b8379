"""The fake MTA's plain submission path (mailsla's post office protocol, queueing) answers as
its aiosmtpd path does and queues the same messages.

The aiosmtpd path is forced with a fault that never fires (probability 0): nothing else
differs between the two fake MTAs. Reply codes must agree on every command, and the fake
MTA's own replies (relay denied, queued, queue full) word for word.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from bench.config.delays import parse_delay
from bench.config.faults import StageFault
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import until
from tests.fakemta.test_relay import _Recorder

NEVER = StageFault("mail", "4xx", 0.0)

SCRIPT = [
    b"MAIL FROM:<a@x.test>",  # before EHLO
    b"EHLO c.test",
    b"RCPT TO:<u@remote.test>",  # before MAIL
    b"MAIL FROM:<a@x.test>",
    b"MAIL FROM:<b@x.test>",  # nested
    b"RCPT TO:<u@elsewhere.test>",
    b"DATA",  # no recipient yet
    b"RCPT TO:<U@Remote.Test>",
    b"RCPT TO:<v@remote.test>",
    b"RCPT TO:<broken",  # no closing bracket
    b"DATA",
    b"Subject: one\r\n\r\n..dot\r\n.",
    b"MAIL FROM:<a@x.test>",
    b"RCPT TO:<w@remote.test>",
    b"RSET",
    b"NOOP",
    b"MAIL FROM:<a@x.test>",
    b"RCPT TO:<w@remote.test>",
    b"DATA",
    b"Subject: two\r\n\r\nbody\r\n.",  # the queue is full (queue_limit 1, held 60 s)
    b"QUIT",
]


async def _reply(reader: asyncio.StreamReader) -> bytes:
    out = b""
    while True:
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), 5)
        out += line
        if line[3:4] != b"-":
            return out


async def _transcript(port: int) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies = [await _reply(reader)]
    for line in SCRIPT:
        writer.write(line + b"\r\n")
        replies.append(await _reply(reader))
    writer.close()
    return replies


@pytest.fixture
async def start() -> AsyncIterator[tuple[Callable[..., Any], _Recorder]]:
    started: list[FakeMta] = []
    rec = _Recorder()
    loop = asyncio.get_running_loop()
    dest = await loop.create_server(lambda: SMTP(rec), "127.0.0.1", 0)

    async def make(**kw: Any) -> FakeMta:
        mta = FakeMta(
            FakeMtaConfig(relay_host="127.0.0.1", relay_port=dest.sockets[0].getsockname()[1], **kw)
        )
        await mta.start()
        started.append(mta)
        return mta

    yield make, rec
    for mta in started:
        await mta.stop()
    dest.close()
    await dest.wait_closed()


async def test_answers_and_queues_as_the_aiosmtpd_path(
    start: tuple[Callable[..., Any], _Recorder],
) -> None:
    make, _ = start
    held = {"processing_delay": parse_delay("const(60s)"), "queue_limit": 1}
    fast: FakeMta = await make(**held)
    slow: FakeMta = await make(faults=(NEVER,), **held)
    got_fast, got_slow = await _transcript(fast.port), await _transcript(slow.port)
    assert got_fast[0].startswith(b"220 mta.local.test fakemta")  # the post office's protocol
    assert b"ENHANCEDSTATUSCODES" in got_fast[2] and b"ENHANCEDSTATUSCODES" not in got_slow[2]
    assert [r[:3] for r in got_fast] == [r[:3] for r in got_slow]
    ours = (b"550 5.7.1", b"250 2.0.0 Ok: queued", b"452")
    assert (
        [r for r in got_fast if r.startswith(ours)]
        == [r for r in got_slow if r.startswith(ours)]
        == [
            b"550 5.7.1 <u@elsewhere.test>: Relay access denied\r\n",
            b"550 5.7.1 <broken>: Relay access denied\r\n",  # both read "<broken" so
            b"250 2.0.0 Ok: queued as 1\r\n",
            b"452 4.3.1 Insufficient system storage\r\n",
        ]
    )
    for mta in (fast, slow):
        assert mta.relay.stats.queued == 1 and mta.fault_stats.queue_full == 1
        assert mta.relay.stats.holding == 1


async def test_queued_messages_reach_the_destination_whole(
    start: tuple[Callable[..., Any], _Recorder],
) -> None:
    """Two recipients (aiosmtplib's relay), then one (the pipelined relay), both submitted
    pipelined in one write each: what arrives is what was sent, for the accepted ones."""
    make, rec = start
    mta: FakeMta = await make()
    reader, writer = await asyncio.open_connection("127.0.0.1", mta.port)
    await _reply(reader)
    writer.write(b"EHLO c.test\r\n")
    await _reply(reader)
    for rcpts in ([b"u@remote.test", b"v@remote.test"], [b"w@remote.test"]):
        envelope = b"MAIL FROM:<a@x.test>\r\n" + b"".join(b"RCPT TO:<%s>\r\n" % r for r in rcpts)
        writer.write(envelope + b"DATA\r\n")
        codes = [(await _reply(reader))[:3] for _ in range(len(rcpts) + 2)]
        assert codes == [b"250"] * (len(rcpts) + 1) + [b"354"]
        writer.write(b"Subject: s\r\n\r\n..x\r\n.\r\n")
        assert (await _reply(reader)).startswith(b"250 2.0.0 Ok: queued as ")
    writer.write(b"QUIT\r\n")
    writer.close()
    await until(lambda: mta.relay.stats.relayed == 2)
    body = b"Subject: s\r\n\r\n.x\r\n"
    assert sorted(rec.got) == [
        ("a@x.test", ["u@remote.test", "v@remote.test"], body),
        ("a@x.test", ["w@remote.test"], body),
    ]


async def test_a_failing_queue_is_a_500_and_the_connection_goes_on(
    start: tuple[Callable[..., Any], _Recorder],
) -> None:
    """As aiosmtpd answers a failing handler: the message gets a 500, the connection and the
    replies read with it survive."""
    make, _ = start
    mta: FakeMta = await make()

    def broken(*_: object) -> str:
        raise RuntimeError("disk on fire")

    mta.handler.queue = broken  # type: ignore[method-assign]
    reader, writer = await asyncio.open_connection("127.0.0.1", mta.port)
    await _reply(reader)
    writer.write(b"EHLO c.test\r\nMAIL FROM:<a@x.test>\r\nRCPT TO:<u@remote.test>\r\nDATA\r\n")
    assert [(await _reply(reader))[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
    writer.write(b"Subject: s\r\n\r\nx\r\n.\r\nNOOP\r\n")
    assert await _reply(reader) == b"500 5.3.0 Error: (RuntimeError) queueing failed\r\n"
    assert (await _reply(reader))[:3] == b"250"  # the NOOP read with it
    writer.close()
