"""The fake MTA and the post office, as real servers on port 0, driven by a real client."""

from __future__ import annotations

import asyncio
import time

import aiosmtplib
import pytest

from bench.core.message import MessageFactory
from bench.observe.postoffice import PostOffice
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import Arrivals, until


def _factory(run: str = "t") -> MessageFactory:
    return MessageFactory(
        run, size=1024, sender="a@sender.test", domain="remote.test", users=10, recipients=1
    )


async def _client(port: int) -> aiosmtplib.SMTP:
    c = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, local_hostname="client.test", start_tls=False, timeout=10
    )
    await c.connect()
    return c


async def test_relays_to_post_office_with_identity(
    fakemta: FakeMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    _, arrivals = postoffice
    f = _factory()
    client = await _client(fakemta.port)
    for seq in range(5):
        rcpts = f.recipients_of(seq)
        await client.sendmail(f.sender, rcpts, f.build(seq, rcpts, time.time_ns()))
    await client.quit()
    await arrivals.wait(5)
    ids = sorted(a[0].id for a in arrivals.items if a[0] is not None)
    assert ids == [0, 1, 2, 3, 4]
    assert all(a[0] is not None and a[0].run == "t" for a in arrivals.items)
    assert all(mail_ns <= recv_ns for _, mail_ns, recv_ns in arrivals.items)
    await until(lambda: fakemta.relay.stats.relayed == 5)


async def test_without_fast_paths_it_runs_on_aiosmtpd_and_aiosmtplib(
    postoffice: tuple[PostOffice, Arrivals], monkeypatch: pytest.MonkeyPatch
) -> None:
    """fast_paths=False (what ``mailsla selftest --fast-paths`` measures against) takes neither
    fast path and relays all the same."""

    def not_taken(*args: object, **kwargs: object) -> None:
        raise AssertionError("a fast path was taken with fast_paths=False")

    monkeypatch.setattr("fakemta.server.queue_factory", not_taken)
    monkeypatch.setattr("fakemta.relay.RelayConnection.send", not_taken)
    po, arrivals = postoffice
    mta = FakeMta(FakeMtaConfig(relay_host="127.0.0.1", relay_port=po.port, fast_paths=False))
    await mta.start()
    try:
        f = _factory()
        client = await _client(mta.port)
        for seq in range(3):
            rcpts = f.recipients_of(seq)
            await client.sendmail(f.sender, rcpts, f.build(seq, rcpts, time.time_ns()))
        await client.quit()
        await arrivals.wait(3)
        assert sorted(a[0].id for a in arrivals.items if a[0] is not None) == [0, 1, 2]
        await until(lambda: mta.relay.stats.relayed == 3)
    finally:
        await mta.stop()


async def test_refuses_relay_for_other_domains(fakemta: FakeMta) -> None:
    client = await _client(fakemta.port)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await client.sendmail("a@sender.test", ["x@elsewhere.test"], b"Subject: x\r\n\r\nx\r\n")
    assert info.value.recipients[0].code == 550
    await client.quit()


@pytest.mark.parametrize("mta_delay", ["const(300ms)"])
@pytest.mark.parametrize("mta_workers", [1])
async def test_delay_does_not_occupy_a_delivery_worker(
    fakemta: FakeMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    """20 messages held 300 ms each through ONE worker: held in parallel, not one by one
    (serially the last would arrive after 6 s)."""
    _, arrivals = postoffice
    f = _factory()
    client = await _client(fakemta.port)
    accepted: dict[int, int] = {}
    for seq in range(20):
        rcpts = f.recipients_of(seq)
        await client.sendmail(f.sender, rcpts, f.build(seq, rcpts, time.time_ns()))
        accepted[seq] = time.monotonic_ns()
    await arrivals.wait(20)
    delays = [(mail_ns - accepted[i.id]) / 1e9 for i, mail_ns, _ in arrivals.items if i]
    assert min(delays) >= 0.29  # the hold is honoured...
    assert max(delays) < 3.0  # ...and does not queue behind the other holds
    await client.quit()


@pytest.mark.parametrize("postoffice_server", ["aiosmtpd"])  # sees the DATA hook replaced below
@pytest.mark.parametrize("mta_delay", ["const(0ms)"])
async def test_deferred_mail_is_retried(
    postoffice: tuple[PostOffice, Arrivals], fakemta: FakeMta
) -> None:
    po, arrivals = postoffice
    original = po.handler.handle_DATA
    calls = {"n": 0}

    def flaky(server, session, envelope):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            return "451 4.3.0 try again later"
        return original(server, session, envelope)

    po.handler.handle_DATA = flaky  # type: ignore[method-assign]
    f = _factory()
    client = await _client(fakemta.port)
    await client.sendmail(f.sender, f.recipients_of(0), f.build(0, f.recipients_of(0), 0))
    await arrivals.wait(1)
    await until(lambda: fakemta.relay.stats.relayed == 1)
    assert fakemta.relay.stats.deferred == 1
    await client.quit()


async def test_survives_garbage_and_half_open_clients(
    fakemta: FakeMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    _, arrivals = postoffice
    r, w = await asyncio.open_connection("127.0.0.1", fakemta.port)
    assert (await r.readline()).startswith(b"220")
    w.write(b"\x00\xff garbage \x80\r\nFOO BAR\r\nMAIL FROM:<<<>>>\r\n")
    await w.drain()
    replies = [await r.readline() for _ in range(3)]
    assert all(line[:1] == b"5" for line in replies), replies
    # a client that says nothing and one that hangs up mid-command
    _r2, w2 = await asyncio.open_connection("127.0.0.1", fakemta.port)
    w3 = (await asyncio.open_connection("127.0.0.1", fakemta.port))[1]
    w3.write(b"EHLO half")
    w3.close()
    f = _factory()
    client = await _client(fakemta.port)
    await client.sendmail(f.sender, f.recipients_of(0), f.build(0, f.recipients_of(0), 0))
    await arrivals.wait(1)
    await client.quit()
    w.close()
    w2.close()


async def test_post_office_counts_mail_without_identity(
    postoffice: tuple[PostOffice, Arrivals],
) -> None:
    po, arrivals = postoffice
    client = await _client(po.port)
    await client.sendmail("a@x.test", ["u@remote.test"], b"Subject: hi\r\n\r\nnot ours\r\n")
    await arrivals.wait(1)
    assert arrivals.items[0][0] is None
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await client.sendmail("a@x.test", ["u@other.test"], b"Subject: hi\r\n\r\nx\r\n")
    await client.quit()
