"""bench.smtp.body.Body: a body arriving in chunks ends where the one-chunk path says, holds what
that path would deliver, never more than the limit, and costs no object per trickled byte."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.smtp.body import BLOCK, Body

LINE = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\r\n" not in b and not b.endswith(b"\r")),
    st.sampled_from([b"", b".", b"..", b".x", b". ", b"\r", b"\n.", b"x\n.\n"]),
)


def one_chunk(wire: bytes) -> tuple[bytes, int]:
    """What bench.smtp.server makes of a body that came whole: (content, end offset)."""
    if wire.startswith(b".\r\n"):
        return b"", 3
    i = wire.find(b"\r\n.\r\n")
    content = wire[: i + 2].replace(b"\r\n.", b"\r\n")
    return (content[1:] if content[:1] == b"." else content), i + 5


def fed(chunks: list[bytes], limit: int = 1 << 30) -> tuple[Body, int, int]:
    """Feed *chunks* until the end: (body, index of the last chunk fed, offset in it)."""
    body = Body(limit)
    for n, chunk in enumerate(chunks):
        end = body.feed(chunk)
        if end >= 0:
            return body, n, end
    raise AssertionError("no end marker")


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(LINE, max_size=12),
    after=st.binary(max_size=10),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=10),
)
def test_chunked_is_the_one_chunk_path(lines: list[bytes], after: bytes, cuts: list[int]) -> None:
    wire = b"".join(x + b"\r\n" for x in lines) + b".\r\n" + after
    want, stop = one_chunk(wire)
    points = sorted({0, len(wire), *(c % (len(wire) + 1) for c in cuts)})
    chunks = [wire[a:b] for a, b in itertools.pairwise(points) if b > a]
    body, n, end = fed(chunks)
    assert body.content() == want
    assert sum(map(len, chunks[:n])) + end == stop  # where the commands resume
    assert body.size == stop - 3  # the body's bytes, as sent: all but the final ".\r\n"


def test_one_byte_at_a_time_is_blocks_not_objects() -> None:
    wire = b"x" * (5 * BLOCK) + b"\r\n.\r\n"
    body = Body(1 << 30)
    for i in range(len(wire) - 5):
        assert body.feed(wire[i : i + 1]) == -1
    assert len(body.parts) <= 5 and len(body.pend) < BLOCK
    assert body.feed(wire[-5:]) == 5
    assert body.content() == wire[:-3]


def test_past_the_limit_nothing_is_held_and_the_end_still_counts() -> None:
    limit = 10_000
    for size in (limit - 2, limit, limit + 1, limit + 2, 3 * limit):
        wire = b"y" * (size - 2) + b"\r\n.\r\n"
        chunks = [wire[i : i + 999] for i in range(0, len(wire), 999)]
        body, _, _ = fed(chunks, limit)
        assert body.size == size
        assert (body.content() is None) == (size > limit), size
        assert body.held <= limit


def test_held_stops_at_the_limit() -> None:
    body = Body(50_000)
    for _ in range(100):
        body.feed(b"z" * 1000)
        assert body.held <= 50_000
    assert body.too_big and body.held == 0 and not body.parts


def test_a_marker_across_three_chunks() -> None:
    body = Body(100)
    assert body.feed(b"abc\r") == -1
    assert body.feed(b"\n.") == -1
    assert body.feed(b"\r\nNOOP\r\n") == 2
    assert body.content() == b"abc\r\n"


def test_an_empty_body() -> None:
    body = Body(100)
    assert body.feed(b".") == -1
    assert body.feed(b"\r\nQUIT\r\n") == 2
    assert body.content() == b""
