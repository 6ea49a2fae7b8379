"""The post office's limits (bench.smtp.limits: Postfix's, and its wording) are the same on its
two servers: the same conversations get the same codes from both, and the limits' replies the
same text, word for word."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bench.observe.postoffice import PostOffice
from bench.observe.postoffice_protocol import DATA_SIZE_DEFAULT, POSTOFFICE_LIMITS
from bench.smtp.limits import (
    BAD_RECIPIENT,
    BAD_SENDER,
    DEFAULT_LIMITS,
    LINE_TOO_LONG,
    NUL_IN_COMMAND,
    SIZE_EXCEEDED,
    TOO_MANY_RECIPIENTS,
    Limits,
)
from tests.conftest import Arrivals
from tests.observe.test_fastpost import codes, converse

LIMIT = 20_000
LIMITS = Limits(message_size=LIMIT)
WORDED = {LINE_TOO_LONG, SIZE_EXCEEDED, TOO_MANY_RECIPIENTS, BAD_SENDER, BAD_RECIPIENT}
WORDED |= {NUL_IN_COMMAND}
HOST = "postoffice.remote.test"
CLOSING = {f"421 4.7.0 {HOST} Error: too many errors"}
ENVELOPE = [b"EHLO c.test\r\n", b"MAIL FROM:<a@x.test>\r\n"]


@pytest.fixture
async def offices() -> AsyncIterator[dict[str, PostOffice]]:
    arrivals = Arrivals()
    pos = {
        name: PostOffice("remote.test", arrivals.sink, server=name, limits=LIMITS)
        for name in ("fast", "aiosmtpd")
    }
    for po in pos.values():
        await po.start()
    yield pos
    for po in pos.values():
        await po.stop()


async def both(offices: dict[str, PostOffice], steps: list[bytes]) -> list[str]:
    """The replies of both servers to *steps*, pipelined: the same codes, and the limits'
    replies in the same words."""
    fast = await converse(offices["fast"].port, steps, lockstep=False)
    ref = await converse(offices["aiosmtpd"].port, steps, lockstep=False)
    assert codes(fast) == codes(ref), (fast, ref)
    for a, b in zip(fast, ref, strict=True):
        if a in WORDED | CLOSING or b in WORDED | CLOSING:
            assert a == b
    return fast


def rcpts(n: int) -> list[bytes]:
    return [b"RCPT TO:<u%d@remote.test>\r\n" % i for i in range(n)]


def noop(length: int, end: bytes = b"\r\n") -> bytes:
    """A NOOP line *length* bytes long before its line end."""
    return b"NOOP " + b"x" * (length - 5) + end


def test_the_defaults_are_postfix_s() -> None:
    assert Limits(1000, 2048, 10_240_000, 20, 300.0) == DEFAULT_LIMITS
    # the post office takes whatever a scenario may send (message.size up to 50 MiB)
    assert POSTOFFICE_LIMITS.message_size == DATA_SIZE_DEFAULT > 50 * 1024 * 1024
    assert POSTOFFICE_LIMITS.recipients == 1000 and POSTOFFICE_LIMITS.errors == 20


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, 10**7])
def test_limits_out_of_range_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="recipient limit"):
        Limits(recipients=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="idle timeout"):
        Limits(idle_timeout=float("inf"))


async def test_line_length(offices: dict[str, PostOffice]) -> None:
    steps = [noop(2048), noop(2049), noop(2049, b"\n"), noop(2050, b"\n"), noop(100_000)]
    replies = await both(offices, [b"EHLO c.test\r\n", *steps])
    assert codes(replies[2:7]) == ["250", "500", "250", "500", "500"]
    assert replies[3] == replies[5] == replies[6] == LINE_TOO_LONG


async def test_nul_bytes(offices: dict[str, PostOffice]) -> None:
    steps = [b"EHLO c.test\r\n", b"MAIL FROM:<a\0@x.test>\r\n", b"MAIL FROM:<a@x.test>\r\n"]
    steps += [b"RCPT TO:<\0u@remote.test>\r\n", b"NOOP \0\r\n", b"HELO \0\r\n", b"NO\0OP\r\n"]
    replies = await both(offices, steps)
    assert [replies[2], replies[4], replies[5], replies[6]] == [
        BAD_SENDER, BAD_RECIPIENT, NUL_IN_COMMAND, NUL_IN_COMMAND,
    ]  # fmt: skip
    assert codes(replies[2:8]) == ["501", "250", "501", "501", "501", "500"]


async def test_size(offices: dict[str, PostOffice]) -> None:
    steps = [b"EHLO c.test\r\n", b"MAIL FROM:<a@x.test> SIZE=%d\r\n" % (LIMIT + 1)]
    steps += [b"MAIL FROM:<a@x.test> SIZE=%d\r\n" % LIMIT, *rcpts(1), b"DATA\r\n"]
    long_header = b"X-Long: " + b"h" * 5000 + b"\r\n\r\n"  # aiosmtpd alone refused lines > 1001
    steps += [long_header + b"b" * (LIMIT - len(long_header) - 2) + b"\r\n.\r\n"]
    steps += [b"MAIL FROM:<a@x.test>\r\n", *rcpts(1), b"DATA\r\n", b"y" * LIMIT + b"\r\n.\r\n"]
    replies = await both(offices, steps)
    assert f"250-SIZE {LIMIT}" in replies[1]
    assert replies[2] == SIZE_EXCEEDED
    assert codes(replies[3:7]) == ["250", "250", "354", "250"]  # exactly the limit: taken
    assert codes(replies[7:11]) == ["250", "250", "354", "552"] and replies[10] == SIZE_EXCEEDED


async def test_recipients(offices: dict[str, PostOffice]) -> None:
    replies = await both(offices, [*ENVELOPE, *rcpts(1001), b"DATA\r\n", b"x\r\n.\r\n"])
    assert codes(replies[3:1003]) == ["250"] * 1000
    assert replies[1003] == TOO_MANY_RECIPIENTS
    assert codes(replies[1004:1006]) == ["354", "250"]  # the 1000 taken have the message


async def test_recipients_past_the_overshoot_count_as_errors(
    offices: dict[str, PostOffice],
) -> None:
    replies = await both(offices, [*ENVELOPE, *rcpts(2100)])
    assert replies[3 + 1000 : -1] == [TOO_MANY_RECIPIENTS] * 1020
    assert replies[-1] in CLOSING


async def test_a_new_transaction_has_the_whole_limit(offices: dict[str, PostOffice]) -> None:
    steps = [*ENVELOPE, *rcpts(1100), b"RSET\r\n", b"MAIL FROM:<a@x.test>\r\n", *rcpts(1000)]
    replies = await both(offices, steps)
    assert codes(replies[-1001:]) == ["250"] * 1000 + ["221"]


async def test_errors(offices: dict[str, PostOffice]) -> None:
    """20 of the server's own errors, then 421 and the close; replies to hooks (a domain not
    the office's: 550) and the end of DATA (552) are not counted."""
    policy = [*ENVELOPE, *[b"RCPT TO:<u@elsewhere.test>\r\n"] * 30, *rcpts(1), b"DATA\r\n"]
    policy += [b"y" * LIMIT + b"\r\n.\r\n"] * 1
    steps = [*policy, *[b"BDAT 1\r\n"] * 4, *[b"DATA\r\n"] * 15, b"NOOP\r\n"]
    replies = await both(offices, steps)
    assert codes(replies[3:33]) == ["550"] * 30 and codes(replies[33:36]) == ["250", "354", "552"]
    assert codes(replies[36:]) == ["500"] * 4 + ["503"] * 15 + ["250", "221"]
    replies = await both(offices, [b"EHLO c.test\r\n", *[b"DATA\r\n"] * 21])
    assert codes(replies[2:]) == ["503"] * 20 + ["421"] and replies[-1] in CLOSING
