"""Connections that misbehave by what they do not send: 500 slow, idle ones (closed after the
idle timeout, one second here, Postfix's smtpd_timeout being 300 s) and half-open ones (the
client shut its side down). After each: the server is alive, an ordinary message goes through,
and the process's memory grew by less than the bound stated (its peak, see ``Memory``)."""

from __future__ import annotations

import asyncio

from tests.hostile.conftest import IDLE, Memory, Peer, Target, enough_files

IDLE_CONNECTIONS = 500


async def _open(port: int, n: int) -> list[Peer]:
    peers: list[Peer] = []
    for start in range(0, n, 50):  # 50 at a time: within the listen backlog
        peers += await asyncio.gather(*(Peer.open(port) for _ in range(start, min(n, start + 50))))
    return peers


async def test_500_slow_idle_connections_are_closed(target: Target, memory: Memory) -> None:
    """Each greets, sends half a command, then nothing: each gets 421 4.4.2 after the idle
    timeout and is closed, while an ordinary message goes through meanwhile. Bound: 24 MiB
    (both ends of 500 connections, in this one process)."""
    enough_files(4 * IDLE_CONNECTIONS + 256)
    with memory:
        loop = asyncio.get_running_loop()
        started = loop.time()
        peers = await _open(target.port, IDLE_CONNECTIONS)
        for peer in peers:
            peer.w.write(b"EH")  # slow: half a command, then silence
        await target.normal_message()
        ends = await asyncio.gather(*(p.until_closed(timeout=IDLE + 10) for p in peers))
        took = loop.time() - started
        for peer in peers:
            peer.close()
    timed_out = f"421 4.4.2 {target.hostname} Error: timeout exceeded"
    assert all(end == [timed_out] for end in ends), {tuple(e) for e in ends}
    assert IDLE <= took < IDLE + 10
    assert memory.grew_mib < 24
    await target.after()


async def test_traffic_keeps_a_connection(target: Target) -> None:
    """The timeout counts silence, not the session: a byte now and then keeps it open."""
    peer = await Peer.open(target.port)
    for _ in range(3):  # 1.2 idle timeouts in all
        await asyncio.sleep(0.4 * IDLE)
        assert (await peer.cmd("NOOP"))[:3] == "250"
    peer.close()


async def test_half_open_connections_are_closed(target: Target, memory: Memory) -> None:
    """200 clients shut their writing side down: after the greeting, after some commands,
    and in the middle of a message. The server closes each (the fast one after answering what
    came before; aiosmtpd's at once), and delivers nothing half sent. Bound: 8 MiB."""
    enough_files(4 * 200 + 256)
    queued = target.mta.relay.stats.queued if target.mta is not None else 0
    received = len(target.arrivals.items)
    says = [
        b"",
        b"EHLO c.test\r\nMAIL FROM:<a@sender.test>\r\n",
        b"EHLO c.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<u@remote.test>\r\nDATA\r\n"
        b"Subject: half\r\n\r\nno end",
        b"EHLO c.test\r\nNOOP",  # half a line
    ]
    with memory:
        peers = await _open(target.port, 200)
        for i, peer in enumerate(peers):
            peer.w.write(says[i % len(says)])
            peer.w.write_eof()
        ends = await asyncio.gather(*(p.until_closed(timeout=5) for p in peers))
        for peer in peers:
            peer.close()
    for i, end in enumerate(ends):  # what came before the end is answered, or nothing is
        assert all(r[:3] in ("250", "354") for r in end), (i, end)
    assert len(target.arrivals.items) == received
    if target.mta is not None:
        assert target.mta.relay.stats.queued == queued
    assert memory.grew_mib < 8
    await target.after()
