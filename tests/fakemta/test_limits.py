"""The fake MTA's limits: Postfix's by default, the same on its fast path and on aiosmtpd's
(forced by a fault that never fires, or by STARTTLS), configurable, and its queue bounded by
default; a big message's memory is given back once it has been relayed."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiosmtplib
import pytest

from bench.config.delays import parse_delay
from bench.config.faults import StageFault
from bench.observe.postoffice import PostOffice
from bench.smtp.limits import LINE_TOO_LONG, SIZE_EXCEEDED, TOO_MANY_RECIPIENTS, Limits
from fakemta.config import QUEUE_BYTES_LIMIT, QUEUE_LIMIT
from fakemta.faults import QUEUE_FULL
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import Arrivals, until
from tests.hostile.conftest import Memory, Peer

NEVER = StageFault("mail", "4xx", 0.0)
HOST = "mta.local.test"
Start = Callable[..., Any]


@pytest.fixture
async def start(postoffice: tuple[PostOffice, Arrivals]) -> AsyncIterator[Start]:
    po, _ = postoffice
    started: list[FakeMta] = []

    async def make(**kw: Any) -> FakeMta:
        kw.setdefault("processing_delay", parse_delay("const(0ms)"))
        mta = FakeMta(FakeMtaConfig(relay_host="127.0.0.1", relay_port=po.port, **kw))
        await mta.start()
        started.append(mta)
        return mta

    yield make
    for mta in started:
        await mta.stop()


def test_the_defaults() -> None:
    config = FakeMtaConfig(relay_host="127.0.0.1", relay_port=25)
    assert config.limits() == Limits(1000, 2048, 10_240_000, 20, 300.0)
    assert (QUEUE_LIMIT, QUEUE_BYTES_LIMIT) == (100_000, 1 << 30)


@pytest.mark.parametrize(
    "bad",
    [
        {"recipient_limit": 0},
        {"line_length_limit": 100},
        {"message_size_limit": 0},
        {"error_limit": 0},
        {"idle_timeout": 0.0},
        {"queue_bytes_limit": 0},
    ],
)
def test_limits_out_of_range_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"limit|timeout"):
        FakeMta(FakeMtaConfig(relay_host="127.0.0.1", relay_port=25, **bad))


SCRIPT = [
    b"EHLO c.test",
    b"NOOP " + b"x" * 3000,
    b"MAIL FROM:<a@x.test> SIZE=20001",
    b"MAIL FROM:<a\0@x.test>",
    b"MAIL FROM:<a@x.test>",
    b"RCPT TO:<u\0@remote.test>",
    *(b"RCPT TO:<u%d@remote.test>" % i for i in range(4)),  # the 4th is one too many
    b"DATA",
    b"X-Long: " + b"h" * 5000 + b"\r\n\r\nbody",  # long lines are no problem: the size is
    b"MAIL FROM:<a@x.test>",
    b"RCPT TO:<u@remote.test>",
    b"DATA",
    b"y" * 20_001,
    b"NOOP",
]
LIMITED = {"recipient_limit": 3, "message_size_limit": 20_000, "error_limit": 20}


async def _transcript(port: int, script: list[bytes]) -> list[str]:
    peer = await Peer.open(port, greeted=False)
    replies = [await peer.reply()]
    for line in script:
        await peer.send(line + (b"\r\n.\r\n" if line.startswith((b"X-", b"yyy")) else b"\r\n"))
        replies.append(await peer.reply())
    peer.close()
    return replies


@pytest.mark.parametrize("slow", [{"faults": (NEVER,)}, {"tls": True}], ids=["faults", "tls"])
async def test_the_same_limits_on_both_paths(start: Start, slow: dict[str, Any]) -> None:
    fast = await _transcript((await start(**LIMITED)).port, SCRIPT)
    ref = await _transcript((await start(**LIMITED, **slow)).port, SCRIPT)
    assert [r[:3] for r in fast] == [r[:3] for r in ref]
    assert "250-SIZE 20000" in fast[1] and "250-SIZE 20000" in ref[1]
    ours = (LINE_TOO_LONG, SIZE_EXCEEDED, TOO_MANY_RECIPIENTS, "501 5.1.")
    assert (
        [r for r in fast if r.startswith(ours)]
        == [r for r in ref if r.startswith(ours)]
        == [
            LINE_TOO_LONG,
            SIZE_EXCEEDED,
            "501 5.1.7 Bad sender address syntax",
            "501 5.1.3 Bad recipient address syntax",
            TOO_MANY_RECIPIENTS,
            SIZE_EXCEEDED,  # the end of DATA
        ]
    )
    assert [r[:3] for r in fast[-6:]] == ["250", "250", "250", "354", "552", "250"]


async def test_a_message_with_1001_recipients_goes_to_1000(
    start: Start, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    _, arrivals = postoffice
    mta = await start()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False) as c:
        rcpts = [f"u{i}@remote.test" for i in range(1001)]
        errors, _ = await c.sendmail("a@x.test", rcpts, b"Subject: many\r\n\r\nx\r\n")
    assert list(errors) == ["u1000@remote.test"] and errors["u1000@remote.test"][0] == 452
    await arrivals.wait(1)  # relayed as one message to the 1000 (the post office's limit too)
    await until(lambda: mta.relay.stats.relayed == 1)


async def test_the_error_limit_and_idle_timeout_are_configurable(start: Start) -> None:
    for slow in ({}, {"tls": True}):
        mta = await start(error_limit=2, idle_timeout=0.3, **slow)
        peer = await Peer.open(mta.port)
        await peer.send(b"DATA\r\nDATA\r\nNOOP\r\n")
        assert [r[:3] for r in await peer.until_closed()] == ["503", "503", "421"]
        peer = await Peer.open(mta.port)
        assert await peer.until_closed(timeout=5) == [f"421 4.4.2 {HOST} Error: timeout exceeded"]


async def test_the_queue_is_bounded_by_default(start: Start) -> None:
    mta = await start()
    assert (mta.handler.queue_limit, mta.handler.queue_bytes_limit) == (100_000, 1 << 30)


@pytest.mark.parametrize("slow", [{}, {"faults": (NEVER,)}], ids=["fast", "aiosmtpd"])
async def test_the_queue_bytes_limit(start: Start, slow: dict[str, Any]) -> None:
    """Held for a minute: the third 1 KB message would pass 2,500 bytes: 452 4.3.1."""
    mta = await start(processing_delay=parse_delay("const(60s)"), queue_bytes_limit=2500, **slow)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False) as c:
        for _ in range(2):
            await c.sendmail("a@x.test", ["u@remote.test"], b"x" * 1000 + b"\r\n")
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await c.sendmail("a@x.test", ["u@remote.test"], b"x" * 1000 + b"\r\n")
    assert f"{refused.value.code} {refused.value.message}" == QUEUE_FULL
    assert mta.relay.stats.holding == 2 and mta.relay.stats.holding_bytes == 2004
    assert mta.fault_stats.queue_full == 1


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "aiosmtpd"])
async def test_big_messages_are_given_back(
    start: Start, postoffice: tuple[PostOffice, Arrivals], fast: bool
) -> None:
    """Four concurrent 30 MB messages, relayed: afterwards the process is back within 24 MiB
    of where it was (it kept about 60 MB for each: references held by idle relay workers,
    and the allocator's). Measured by its own current memory (VmRSS)."""
    _, arrivals = postoffice
    mta = await start(message_size_limit=40_000_000, fast_paths=fast, delivery_workers=8)
    body = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 30_000

    async def one() -> None:
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False) as c:
            await c.sendmail("a@x.test", ["u@remote.test"], body)

    with Memory(peak=False) as memory:
        for rnd in range(2):
            await asyncio.gather(*(one() for _ in range(4)))
            await arrivals.wait(4 * (rnd + 1), timeout=60)
            await until(lambda: mta.relay.stats.holding == 0)
        await asyncio.sleep(1.2)  # the allocator's trim comes within a second
        gc.collect()
    assert memory.grew_mib < 24
