"""Outages, the service-rate cap, the queue limit and the relay's retries, with real sockets.

Outages are short (from 0.2 s, for 0.5 s); their start and end are waited for with bounded
polls of the fake MTA's state or of the port, never with sleeps.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest

from bench.config.delays import parse_delay
from bench.config.faults import Outage, StageFault
from bench.core.message import MessageFactory
from bench.observe.postoffice import PostOffice
from fakemta.faults import OUTAGE_421, QUEUE_FULL
from fakemta.server import FakeMta
from tests.conftest import Arrivals, until
from tests.faultkit import Raw, StartMta, mta_starter

MSG = b"Subject: outage\r\n\r\nx\r\n"


@pytest.fixture
async def start_mta(postoffice: tuple[PostOffice, Arrivals]) -> AsyncIterator[StartMta]:
    async with mta_starter(postoffice[0].port) as start:
        yield start


def factory(run: str) -> MessageFactory:
    return MessageFactory(
        run, size=300, sender="a@sender.test", domain="remote.test", users=10, recipients=1
    )


async def send(port: int, f: MessageFactory, seqs: range | list[int]) -> list[str]:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=10)
    await client.connect()
    replies = []
    for seq in seqs:
        rcpts = f.recipients_of(seq)
        _, reply = await client.sendmail(f.sender, rcpts, f.build(seq, rcpts, 0))
        replies.append(reply)
    await client.quit()
    return replies


def in_outage(mta: FakeMta) -> bool:
    return mta.faults is not None and mta.faults.outage is not None


def outage_over(mta: FakeMta) -> bool:
    return mta.faults is not None and mta.faults.outage is None and bool(mta.fault_stats.outages)


async def test_refuse_closes_the_port_and_reopens_it(
    start_mta: StartMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    _, arrivals = postoffice
    mta = await start_mta(outages=(Outage(0.2, 0.5, "refuse"),))
    port = mta.port
    before = await Raw.open(port)
    assert (await before.reply() or "").startswith("220")
    assert await before.reply(timeout=5) is None  # closed at the outage start, like a crash
    before.close()
    t0 = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        await Raw.open(port)
    after = await Raw.open_when_back(port)  # the same port
    assert time.monotonic() - t0 >= 0.3
    assert (await after.reply() or "").startswith("220")
    after.close()
    await send(port, factory("refuse"), [0])
    await arrivals.wait(1)
    stats = await mta.stop()
    assert stats["outages"] == [{"at": 0.2, "duration": 0.5, "kind": "refuse"}]


async def test_421_for_new_and_existing_connections(start_mta: StartMta) -> None:
    mta = await start_mta(outages=(Outage(0.2, 0.5, "421"),))
    before = await Raw.open(mta.port)
    assert (await before.reply() or "").startswith("220")
    assert (await before.cmd("EHLO client.test") or "").startswith("250")
    await until(lambda: in_outage(mta))
    new = await Raw.open(mta.port)
    assert await new.reply() == OUTAGE_421
    assert await new.reply() is None
    assert await before.cmd("NOOP") == OUTAGE_421
    assert await before.reply() is None
    await until(lambda: outage_over(mta))
    assert (await send(mta.port, factory("421"), [0]))[0].startswith("2.0.0 Ok")
    new.close()
    before.close()


async def test_stall_gives_no_replies_then_closes(start_mta: StartMta) -> None:
    mta = await start_mta(outages=(Outage(0.2, 0.5, "stall"),))
    before = await Raw.open(mta.port)
    assert (await before.reply() or "").startswith("220")
    await until(lambda: in_outage(mta))
    new = await Raw.open(mta.port)
    with pytest.raises(TimeoutError):
        await new.reply(timeout=0.1)  # no greeting
    with pytest.raises(TimeoutError):
        await before.cmd("EHLO client.test", timeout=0.1)  # no reply
    assert await new.reply() is None  # both closed at the end of the outage
    assert await before.reply() is None
    assert outage_over(mta)
    assert (await send(mta.port, factory("stall"), [0]))[0].startswith("2.0.0 Ok")
    new.close()
    before.close()


async def test_blackhole_accepts_and_drops(
    start_mta: StartMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    _, arrivals = postoffice
    mta = await start_mta(outages=(Outage(0.2, 0.5, "blackhole"),))
    f = factory("blackhole")
    await until(lambda: in_outage(mta))
    assert (await send(mta.port, f, [0, 1]))[1].startswith("2.0.0 Ok: queued as")
    await until(lambda: outage_over(mta))
    await send(mta.port, f, [2])
    await arrivals.wait(1)
    await until(lambda: mta.relay.stats.relayed == 1)
    assert [a[0].id for a in arrivals.items if a[0]] == [2]
    stats = await mta.stop()
    assert stats["dropped"] == 2 and stats["queued"] == 1


async def test_outage_covers_the_inbound_port(start_mta: StartMta, tmp_path: Path) -> None:
    """An outage from the start (at 0) applies to both ports; stop() ends it early."""
    mta = await start_mta(
        outages=(Outage(0, 60, "421"),), mailbox_root=str(tmp_path), local_users=("user0",)
    )
    assert mta.inbound_port is not None
    for port in (mta.port, mta.inbound_port):
        c = await Raw.open(port)
        assert await c.reply() == OUTAGE_421
        c.close()
    stats = await mta.stop()
    assert stats["outages"] == [{"at": 0, "duration": 60, "kind": "421"}]


async def test_max_rate_spreads_a_burst(
    start_mta: StartMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    """100 messages at once through a 50/s cap: relayed over about 2 s, all of them."""
    _, arrivals = postoffice
    mta = await start_mta(max_rate=50.0, delivery_workers=8)
    f = MessageFactory(
        "rate", size=300, sender="a@sender.test", domain="remote.test", users=100, recipients=1
    )
    await send(mta.port, f, range(100))
    await arrivals.wait(100, timeout=15)
    received = sorted(r for _, _, r in arrivals.items)
    span = (received[-1] - received[0]) / 1e9
    assert 1.5 <= span <= 6.0, span
    assert sorted(a[0].id for a in arrivals.items if a[0]) == list(range(100))
    await until(lambda: mta.relay.stats.relayed == 100)
    stats = await mta.stop()
    assert isinstance(stats["rate_limited"], int) and stats["rate_limited"] >= 90


async def test_queue_limit_answers_452(start_mta: StartMta) -> None:
    mta = await start_mta(queue_limit=5, processing_delay=parse_delay("const(30s)"))
    f = factory("full")
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False, timeout=10)
    await client.connect()
    for seq in range(5):
        await client.sendmail(f.sender, f.recipients_of(seq), f.build(seq, f.recipients_of(seq), 0))
    with pytest.raises(aiosmtplib.SMTPDataError) as info:
        await client.sendmail(f.sender, f.recipients_of(5), f.build(5, f.recipients_of(5), 0))
    assert f"{info.value.code} {info.value.message}" == QUEUE_FULL
    await client.quit()
    stats = await mta.stop()
    assert stats["queue_full"] == 1 and stats["queued"] == 5 and stats["in_queue"] == 5


@pytest.mark.parametrize("postoffice_server", ["aiosmtpd"])  # sees the DATA hook replaced below
async def test_relay_bounces_a_5xx_at_once(
    start_mta: StartMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    po, _ = postoffice

    async def refuse(server, session, envelope):  # type: ignore[no-untyped-def]
        return "554 5.7.1 not here"

    po.handler.handle_DATA = refuse  # type: ignore[method-assign]
    mta = await start_mta(max_attempts=3)
    await send(mta.port, factory("bounce"), [0])
    await until(lambda: mta.relay.stats.bounced == 1)
    assert mta.relay.stats.deferred == 0 and mta.relay.stats.relayed == 0


@pytest.mark.parametrize(
    ("fault", "deferred"),
    [(StageFault("dot", "4xx", 1.0), 2), (StageFault("rcpt", "5xx", 1.0), 0)],
)
async def test_relay_retries_4xx_from_a_faulty_destination(
    start_mta: StartMta, fault: StageFault, deferred: int
) -> None:
    """A fake MTA relaying to another whose faults are on: 4xx is retried up to max_attempts,
    5xx bounces at once."""
    destination = await start_mta(faults=(fault,))
    mta = await start_mta(relay_port=destination.port, max_attempts=3)
    mta.relay.retry_base = 0.01
    await send(mta.port, factory("chain"), [0])
    await until(lambda: mta.relay.stats.bounced == 1)
    assert mta.relay.stats.deferred == deferred
    assert destination.fault_stats.injected == {fault.key: deferred + 1}
