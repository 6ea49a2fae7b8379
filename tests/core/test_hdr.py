"""bench.core.hdr: the one module that reaches into HdrHistogram's internals."""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from bench.core import hdr

VALUES = st.lists(st.integers(1, hdr.HIGHEST_US), min_size=1, max_size=200)


@given(VALUES)
def test_buckets_and_their_ranges_agree_with_hdrh(values: list[int]) -> None:
    h = hdr.new_histogram()
    for v in values:
        h.record_value(v)
    seen = list(hdr.buckets(h))
    assert sum(n for _, n in seen) == len(values)
    assert [i for i, _ in seen] == sorted({i for i, _ in seen})
    for v in values:
        low, high = h.get_lowest_equivalent_value(v), h.get_highest_equivalent_value(v)
        assert any(hdr.bucket_low(h, i) == low and hdr.bucket_high(h, i) == high for i, _ in seen)


@given(VALUES)
def test_sync_totals_matches_record_value(values: list[int]) -> None:
    ref, fast = hdr.new_histogram(), hdr.new_histogram()
    p = hdr.index_params(fast)
    c = hdr.counts(fast)
    for v in values:
        ref.record_value(v)
        if v < p.first_bucket:
            c[v] += 1
        else:
            b = (v | p.mask).bit_length() - p.half_magnitude - 1
            c[((b + 1) << p.half_magnitude) + (v >> b) - p.half_count] += 1
    hdr.sync_totals(fast)
    assert fast.get_total_count() == ref.get_total_count()
    assert fast.get_min_value() == ref.get_min_value()
    assert fast.get_max_value() == ref.get_max_value()
    assert hdr.decode(fast.encode()).get_total_count() == len(values)


def test_empty_histogram_totals() -> None:
    h = hdr.sync_totals(hdr.new_histogram())
    assert h.get_total_count() == 0
    assert h.min_value == sys.maxsize
    assert list(hdr.buckets(h)) == []
    assert hdr.counts_span(h) == (0, -1, -1)
