"""HdrHistogram internals, in one module: the histograms mailsla keeps (1 µs to 4 h, 3
significant digits), their counts array, bucket value ranges, and codec. Everything that
reaches past hdrh's public API lives here; hdrhistogram is pinned to the 0.10 series
(pyproject.toml), which this was tested against (tests/core/test_metrics.py). Pure.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from typing import NamedTuple

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 4 * 3600 * 1_000_000
DIGITS = 3


def new_histogram() -> HdrHistogram:
    return acyclic(HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS))


def acyclic(h: HdrHistogram) -> HdrHistogram:
    """*h* without its reference cycle (histogram -> encoder -> histogram), so that it is
    freed the moment it is dropped. With the cycle, each interval's histograms (~100 KiB of
    counts apiece) wait for a full garbage collection, and a long run's resident memory grows
    by megabytes a second until one comes (seen: 60 -> 88 MB over a million messages)."""
    h.encoder.histogram = weakref.proxy(h)
    return h


_BLOCK = 4096
_ZEROS = bytes(_BLOCK)


def counts_span(h: HdrHistogram) -> tuple[int, int, int]:
    """(total count, first and last non-zero index) of *h*'s counts; (0, -1, -1) when empty.

    Read from the counts array's bytes: all-zero 4 KiB blocks are skipped by comparison, so
    this costs tens of microseconds, not the milliseconds of a Python loop over the counts.
    """
    raw = memoryview(h.counts).cast("B")
    data = raw.tobytes()
    n = len(data)
    first = last = -1
    for i in range(0, n, _BLOCK):
        block = data[i : i + _BLOCK]
        if block != _ZEROS[: len(block)]:
            first = i + len(block) - len(block.lstrip(b"\0"))
            break
    if first < 0:
        return 0, -1, -1
    for i in range((n - 1) // _BLOCK * _BLOCK, -1, -_BLOCK):
        block = data[i : i + _BLOCK]
        if block != _ZEROS[: len(block)]:
            last = i + len(block.rstrip(b"\0")) - 1
            break
    size = n // h.counts_len
    lo, hi = first // size, last // size
    words = raw.cast("Q") if size == 8 else raw.cast("I") if size == 4 else raw.cast("H")
    return sum(words[lo : hi + 1]), lo, hi


def decode(encoded: str | bytes) -> HdrHistogram:
    """A histogram from its base64 (compressed) encoding, freed as soon as dropped."""
    return acyclic(HdrHistogram.decode(encoded))


def counts(h: HdrHistogram) -> list[int]:
    """*h*'s counts array, indexed by bucket (written in place by the fast recorder)."""
    return h.counts  # type: ignore[no-any-return]


def counts_view(h: HdrHistogram) -> memoryview:
    """*h*'s counts as unsigned 64-bit words, without a copy."""
    return memoryview(h.counts).cast("B").cast("Q")


def buckets(h: HdrHistogram) -> Iterator[tuple[int, int]]:
    """(index, count) of every non-empty bucket, in value order."""
    c = h.counts
    for i in range(h.counts_len):
        if n := c[i]:
            yield i, n


def bucket_low(h: HdrHistogram, index: int) -> int:
    """The lowest value that falls in bucket *index*."""
    return int(h.get_lowest_equivalent_value(h.get_value_from_index(index)))


def bucket_high(h: HdrHistogram, index: int) -> int:
    """The highest value that falls in bucket *index* (what hdrh reports for it)."""
    return int(h.get_highest_equivalent_value(h.get_value_from_index(index)))


class IndexParams(NamedTuple):
    """What the fast recorder needs to compute a value's counts index without hdrh's
    ``_counts_index_for`` (unit magnitude 0, so the lowest trackable value is 1):
    ``bucket = (v | mask).bit_length() - half_magnitude - 1`` and
    ``index = ((bucket + 1) << half_magnitude) + (v >> bucket) - half_count``; values below
    ``first_bucket`` are their own index."""

    mask: int
    half_magnitude: int
    half_count: int
    first_bucket: int


def index_params(h: HdrHistogram) -> IndexParams:
    return IndexParams(
        h.sub_bucket_mask,
        h.sub_bucket_half_count_magnitude,
        h.sub_bucket_half_count,
        h.sub_bucket_count,
    )


def set_totals(h: HdrHistogram, total: int, min_value: int, max_value: int) -> HdrHistogram:
    """Set *h*'s own totals (kept out of step by the fast recorder) to the given ones."""
    h.total_count = total
    h.min_value, h.max_value = min_value, max_value
    return h


def sync_totals(h: HdrHistogram) -> HdrHistogram:
    """Bring *h*'s totals in step with its counts array."""
    total, lo, hi = counts_span(h)
    if not total:
        return set_totals(h, 0, sys.maxsize, 0)
    return set_totals(h, total, h.get_value_from_index(lo), bucket_high(h, hi))
