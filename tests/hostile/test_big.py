"""Too much of everything: a 1 MB line, 10,000 recipients, a 50 MB message.

Each is answered with Postfix's reply (:mod:`bench.smtp.limits`), on both server paths; after
each, the server is alive, an ordinary message goes through, and the process's memory grew by
less than the bound stated with the test (its peak, see ``Memory``)."""

from __future__ import annotations

from bench.smtp.limits import LINE_TOO_LONG, SIZE_EXCEEDED, TOO_MANY_RECIPIENTS
from tests.hostile.conftest import Memory, Peer, Target

MIB = 1 << 20
ZEDS = b"z" * MIB
RCPT = b"RCPT TO:<u%d@remote.test>\r\n"


async def test_a_1mb_command_line(target: Target, memory: Memory) -> None:
    """A command line is at most 2048 bytes (line_length_limit): a 1 MiB one is refused once
    its end comes, and never held. Bound: 8 MiB."""
    with memory:
        peer = await Peer.open(target.port)
        await peer.cmd("EHLO c.test")
        await peer.send(b"NOOP " + b"x" * MIB + b"\r\nNOOP\r\n")
        too_long, noop = await peer.replies(2)
        assert too_long == LINE_TOO_LONG and noop[:3] == "250"
        await peer.send(b"MAIL FROM:<a@sender.test> " + b"y" * 2100 + b"\r\n")
        assert await peer.reply() == LINE_TOO_LONG
        peer.close()
    assert memory.grew_mib < 8
    await target.after()


async def test_a_1mb_header_line_is_a_1mb_message(target: Target, memory: Memory) -> None:
    """Header and body lines are not limited in length, the message is: a 1 MiB header line
    is taken on both paths (a 10 MiB one is over message_size_limit: 552, on both paths too).
    Bound: 24 MiB."""
    before = len(target.arrivals.items)
    with memory:
        peer = await Peer.open(target.port)
        await peer.cmd("EHLO c.test")
        for long, want in ((MIB, "250"), (10 * MIB, "552")):
            await peer.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<u@remote.test>\r\nDATA\r\n")
            assert [r[:3] for r in await peer.replies(3)] == ["250", "250", "354"]
            await peer.send(b"X-Long: ")
            for _ in range(long // MIB):  # a MiB at a time: the client holds little
                await peer.send(ZEDS)
            await peer.send(b"\r\n\r\nbody\r\n.\r\n")
            reply = await peer.reply()
            assert reply[:3] == want, reply
        assert reply == SIZE_EXCEEDED
        peer.close()
        await target.arrivals.wait(before + 1)
    assert memory.grew_mib < 24
    await target.after()


async def test_10000_recipients(target: Target, memory: Memory) -> None:
    """smtpd_recipient_limit 1000: the 1001st and later get 452 4.5.3 (not counted as errors
        for as many again, Postfix's overshoot), then each counts, and the 20th is followed by
        421 and the close (pipelined 100 at a time: a client sending all 10,000 at once may lose the
    last replies to the reset its unread commands cause). Bound: 8 MiB."""
    replies: list[str] = []
    with memory:
        peer = await Peer.open(target.port)
        await peer.cmd("EHLO c.test")
        await peer.send(b"MAIL FROM:<a@sender.test>\r\n")
        assert (await peer.reply())[:3] == "250"
        for group in range(100):  # pipelined 100 at a time, as a client's window allows
            try:
                await peer.send(b"".join(RCPT % (100 * group + i) for i in range(100)))
            except ConnectionError:  # closed: the rest is not read
                break
            got = [await peer.reply() for _ in range(100)]
            replies += [r for r in got if r]
            if "" in got:
                break
        peer.close()
    assert [r[:3] for r in replies[:1000]] == ["250"] * 1000
    assert replies[1000:-1] == [TOO_MANY_RECIPIENTS] * 1020
    assert replies[-1] == f"421 4.7.0 {target.hostname} Error: too many errors"
    assert memory.grew_mib < 8
    await target.after()


async def test_a_50mb_message(target: Target, memory: Memory) -> None:
    """message_size_limit 10240000: advertised, a SIZE= over it refused at MAIL, a body over it
        read to its end (nothing more kept past the limit) and refused there with 552 5.3.4; the
        session goes on. Sent 1 MiB at a time. Bound: 24 MiB (what it holds before the limit is
    passed, 9.8 MiB, and buffers): less than half the message."""
    block = b"y" * (MIB - 2) + b"\r\n"
    with memory:
        peer = await Peer.open(target.port)
        assert "SIZE 10240000" in await peer.cmd("EHLO c.test")
        assert await peer.cmd(f"MAIL FROM:<a@sender.test> SIZE={50 * MIB}") == SIZE_EXCEEDED
        await peer.send(b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<u@remote.test>\r\nDATA\r\n")
        assert [r[:3] for r in await peer.replies(3)] == ["250", "250", "354"]
        for _ in range(50):
            await peer.send(block)
        await peer.send(b".\r\nNOOP\r\n")
        assert await peer.reply(timeout=30) == SIZE_EXCEEDED
        assert (await peer.reply())[:3] == "250"
        peer.close()
    assert memory.grew_mib < 24
    await target.after()
