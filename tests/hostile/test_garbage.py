"""Garbage at every server: random bytes, NUL bytes and non-UTF-8, commands out of order.

After each: the server is alive, an ordinary message goes through, and the process's memory
grew by less than :data:`BOUND_MIB` (its peak, see ``Memory``)."""

from __future__ import annotations

import random

import pytest

from bench.smtp.limits import BAD_RECIPIENT, BAD_SENDER, NUL_IN_COMMAND
from tests.hostile.conftest import Memory, Peer, Target

BOUND_MIB = 8  # what garbage may cost while it is thrown (a few connections' buffers)


def codes(replies: list[str]) -> list[str]:
    return [r[:3] for r in replies]


async def test_the_paths_are_the_ones_named(target: Target) -> None:
    peer = await Peer.open(target.port)
    ehlo = await peer.cmd("EHLO c.test")
    fast = target.name.endswith("-fast")
    assert ("ENHANCEDSTATUSCODES" in ehlo) == fast  # only mailsla's own server says it
    assert "SIZE 10240000" in ehlo
    peer.close()


def _junk(seed: int, size: int, lines: int) -> bytes:
    """*size* random bytes with at least *lines* line ends in them."""
    data = random.Random(seed).randbytes(size)
    assert data.count(b"\n") >= lines
    return data


async def test_random_bytes_end_the_session(target: Target, memory: Memory) -> None:
    """8 KiB of random bytes (about 30 lines): every line is an error, and after 20 errors the
    server says 421 and closes (Postfix: smtpd_hard_error_limit), unless 5 unknown commands
    came first (aiosmtpd's goodbye, which both servers keep)."""
    junk = _junk(20, 8192, 25)
    with memory:
        peer = await Peer.open(target.port)
        await peer.send(junk)
        replies = await peer.until_closed()
        peer.close()
    last = replies[-1]
    assert last == f"421 4.7.0 {target.hostname} Error: too many errors" or last.startswith(
        "502 5.5.1 Too many unrecognized commands"
    ), replies
    assert all(code[0] in "45" for code in codes(replies)), replies
    assert memory.grew_mib < BOUND_MIB
    await target.after()


async def test_a_megabyte_of_random_bytes_a_session_at_a_time(
    target: Target, memory: Memory
) -> None:
    """1 MiB of random bytes, 16 KiB at a time, on fresh connections while the server closes
    them: each one ends (EOF or reset) and the server goes on."""
    junk = _junk(21, 1 << 20, 3000)
    with memory:
        sent = 0
        for _ in range(64):  # bounded: each session takes some of it
            if sent >= len(junk):
                break
            peer = await Peer.open(target.port)
            try:
                while sent < len(junk):
                    await peer.send(junk[sent : sent + 16384])
                    sent += 16384
            except ConnectionError:
                pass
            await peer.until_closed()
            peer.close()
    assert memory.grew_mib < BOUND_MIB
    await target.after()


async def test_nul_bytes_and_non_utf8(target: Target, memory: Memory) -> None:
    d = target.domain
    script = [
        ("EHLO c.test", "250"),
        ("MAIL FROM:<a\0b@sender.test>", BAD_SENDER),
        ("MAIL FROM:<a@sender.test>", "250"),
        (f"RCPT TO:<u\0@{d}>", BAD_RECIPIENT),
        ("NOOP \0", NUL_IN_COMMAND),
        ("VRFY \0", NUL_IN_COMMAND),
        ("NO\0OP", "500"),  # NUL in the verb: no such command
        (f"RCPT TO:<\xff@{d}>", "500"),  # strict ASCII
        ("\xff\xfe\xfd", "500"),
        ("\xc3\x28 \xa0\xa1", "500"),  # invalid UTF-8, verb and all
        (f"RCPT TO:<u@{d}>", "250"),
        ("DATA", "354"),
    ]
    with memory:
        peer = await Peer.open(target.port)
        for line, want in script:
            reply = await peer.cmd(line)
            assert reply == want or reply[:3] == want, (line, reply)
        # the body may carry anything but its end marker: 8BITMIME, NULs and all
        body = b"Subject: \xff\xfe\0\r\n\r\n\0\0\0\r\n\xc3\x28\r\n\x80\x81\r\n.\r\n"
        await peer.send(body)
        assert (await peer.reply()).startswith("250 ")
        assert (await peer.cmd("QUIT")).startswith("221")
        peer.close()
    assert memory.grew_mib < BOUND_MIB
    await target.after()


async def test_commands_out_of_order(target: Target, memory: Memory) -> None:
    d = target.domain
    script = [
        ("DATA", "503"),
        (f"RCPT TO:<u@{d}>", "503"),
        ("MAIL FROM:<a@sender.test>", "503"),  # no EHLO yet
        ("EHLO c.test", "250"),
        (f"RCPT TO:<u@{d}>", "503"),  # no MAIL yet
        ("DATA", "503"),
        ("MAIL FROM:<a@sender.test>", "250"),
        ("MAIL FROM:<b@sender.test>", "503"),  # nested
        ("DATA", "503"),  # no RCPT yet
        (f"RCPT TO:<u@{d}>", "250"),
        ("HELO c.test", "250"),  # a new session: the transaction is gone
        ("DATA", "503"),
        (".", "500"),
        ("RSET", "250"),
        ("MAIL FROM:<a@sender.test>", "250"),
        (f"RCPT TO:<u@{d}>", "250"),
        ("DATA", "354"),
    ]
    with memory:
        peer = await Peer.open(target.port)
        for line, want in script:
            assert (await peer.cmd(line))[:3] == want, line
        await peer.send(b"Subject: x\r\n\r\nin order at last\r\n.\r\n")
        assert (await peer.reply()).startswith("250 ")
        peer.close()
        # 25 more, pipelined: the 20th error is followed by 421, and the connection closes
        peer = await Peer.open(target.port)
        await peer.send(b"DATA\r\n" * 25)
        replies = await peer.until_closed()
        peer.close()
    assert codes(replies) == ["503"] * 20 + ["421"]
    assert replies[-1] == f"421 4.7.0 {target.hostname} Error: too many errors"
    assert memory.grew_mib < BOUND_MIB
    await target.after()


@pytest.mark.parametrize("n", [19, 20])
async def test_the_error_limit_is_20(target: Target, n: int) -> None:
    peer = await Peer.open(target.port)
    await peer.send(b"FOO\r\nBAR\r\nBAZ\r\nQUX\r\n" + b"RCPT\r\n" * (n - 4) + b"NOOP\r\n")
    replies = await peer.until_closed(timeout=3) if n == 20 else await peer.replies(n + 1)
    peer.close()
    if n == 20:
        assert codes(replies) == ["500"] * 4 + ["503"] * 16 + ["421"]
    else:  # 19 errors: the session goes on
        assert codes(replies) == ["500"] * 4 + ["503"] * 15 + ["250"]
