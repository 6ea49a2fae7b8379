"""bench.core.metrics: HDR histogram plus exact count/sum/min/max; nothing dropped; exact merge."""

from __future__ import annotations

import pickle

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.core.hdr import HIGHEST_US, new_histogram
from bench.core.metrics import REPORT_PERCENTILES, EncodedMetric, Metric, MetricSet, window_stats

TOP_NS = HIGHEST_US * 1000
# In range (1 µs .. 4 h), plus sub-µs, negative and over-range values.
in_range = st.integers(1_000, TOP_NS)
any_value = st.one_of(
    in_range, st.integers(-(10**9), 999), st.integers(TOP_NS, TOP_NS * 100), st.integers(0, 10**7)
)


def of(values: list[int], name: str = "m", *, interval: bool = False) -> Metric:
    m = Metric(name, interval=interval)
    for v in values:
        m.record(v)
    return m


def exact_figures(m: Metric) -> tuple[int, ...]:
    return (m.count, m.sum_ns, m.min_ns, m.max_ns, m.negative, m.over_range)


def hist_counts(h: HdrHistogram) -> dict[int, int]:
    return {i: c for i, c in enumerate(h.counts) if c}


# -- exact figures ----------------------------------------------------------------------------


def test_empty_metric() -> None:
    m = Metric("x")
    assert (m.count, m.mean_s, m.percentile_s(99)) == (0, None, None)
    assert m.stat("count") == 0.0
    for s in ("mean", "min", "max", "p99"):
        assert m.stat(s) is None


@given(st.lists(any_value, min_size=1, max_size=200))
def test_exact_count_sum_min_max(values: list[int]) -> None:
    m = of(values)
    kept = [max(v, 0) for v in values]  # negative values are kept as 0
    assert exact_figures(m)[:4] == (len(values), sum(kept), min(kept), max(kept))
    assert m.negative == sum(1 for v in values if v < 0)
    assert m.mean_s == pytest.approx(sum(kept) / len(values) / 1e9)
    assert m.stat("min") == min(kept) / 1e9
    assert m.stat("max") == max(kept) / 1e9
    assert m.stat("count") == float(len(values))
    assert m.histogram().get_total_count() == len(values)  # nothing dropped from the histogram


def test_exact_example() -> None:
    m = of([1_000_000, 2_000_000, 6_000_000])
    assert (m.stat("mean"), m.stat("min"), m.stat("max")) == (0.003, 0.001, 0.006)


@given(st.lists(any_value, min_size=1, max_size=200), st.floats(0, 100))
def test_percentile_never_above_max_nor_below_min(values: list[int], q: float) -> None:
    m = of(values)
    p = m.percentile_s(q)
    assert p is not None
    kept = [max(v, 0) for v in values]
    assert min(kept) / 1e9 <= p <= max(kept) / 1e9


@given(st.lists(in_range, min_size=1, max_size=300), st.sampled_from([50.0, 90.0, 99.0, 99.9]))
def test_percentile_within_three_significant_digits(values: list[int], q: float) -> None:
    m = of(values)
    ordered = sorted(values)
    rank = max(int(q * len(values) / 100 + 0.5), 1)
    exact = ordered[rank - 1] / 1e9
    got = m.percentile_s(q)
    assert got is not None
    assert exact * (1 - 1e-3) - 1e-6 <= got <= exact * (1 + 1e-3) + 1e-6


def test_p100_is_exact_max() -> None:
    m = of([1_234_567, 7_654_321])
    assert m.percentile_s(100) == m.stat("p100") == 0.007654321


def test_stat_percentile_names() -> None:
    m = of(list(range(1_000_000, 1_001_000_000, 1_000_000)))  # 1 ms .. 1000 ms
    assert m.stat("p50") == pytest.approx(0.5, rel=1e-3)
    assert m.stat("p99.9") == pytest.approx(0.999, rel=1e-3)
    with pytest.raises(KeyError):
        m.stat("median")


def test_negative_values_counted_not_dropped() -> None:
    m = of([-5_000, -1, 3_000_000])
    assert m.negative == 2
    assert m.count == 3 and m.histogram().get_total_count() == 3
    assert m.min_ns == 0 and m.sum_ns == 3_000_000  # kept as 0: never below 0 in a headline
    assert m.summary()["negative"] == m.negative


def test_every_negative_value_counted() -> None:
    m = of([-5_000, -1, -999])
    assert m.negative == 3
    assert m.histogram().get_total_count() == 3


def test_over_range_counted_not_dropped() -> None:
    big = TOP_NS * 10
    m = of([1_000_000, big])
    assert m.over_range == 1
    assert m.count == 2 and m.histogram().get_total_count() == 2
    assert m.stat("max") == big / 1e9  # the exact max, not the histogram's top
    assert m.percentile_s(99.9) is not None and m.percentile_s(99.9) <= big / 1e9
    assert m.percentile_s(99.9) >= HIGHEST_US / 1e6  # recorded at the top of the range
    s = m.summary()
    assert s["over_range"] == 1 and s["max_s"] == big / 1e9


def test_two_hours_is_in_range() -> None:
    m = of([2 * 3600 * 10**9])
    assert m.over_range == 0
    assert m.percentile_s(50) == pytest.approx(7200, rel=1e-3)


# -- merge ------------------------------------------------------------------------------------


@given(st.lists(any_value, max_size=100), st.lists(any_value, max_size=100))
@settings(max_examples=60)
def test_merge_equals_one_metric_of_all(a: list[int], b: list[int]) -> None:
    merged = of(a)
    merged.merge(of(b))
    whole = of(a + b)
    assert exact_figures(merged) == exact_figures(whole)
    assert hist_counts(merged.histogram()) == hist_counts(whole.histogram())
    assert merged.histogram().get_total_count() == len(a) + len(b)
    for q in (0.0, 50.0, 90.0, 99.0, 99.9, 100.0):
        assert merged.percentile_s(q) == whole.percentile_s(q)
    assert merged.summary() == whole.summary()


def test_merge_into_empty_takes_min_and_max() -> None:
    m = Metric("m")
    m.merge(of([5_000, 9_000]))
    assert (m.min_ns, m.max_ns, m.count) == (5_000, 9_000, 2)


def test_merge_of_empty_changes_nothing() -> None:
    m = of([5_000])
    m.merge(Metric("e"))
    assert exact_figures(m) == (1, 5_000, 5_000, 5_000, 0, 0)


# -- interval histograms ----------------------------------------------------------------------


def test_take_interval_resets() -> None:
    m = of([1_000_000, 2_000_000], interval=True)
    first = m.take_interval()
    assert first.get_total_count() == 2
    m.record(3_000_000)
    assert m.take_interval().get_total_count() == 1
    assert m.take_interval().get_total_count() == 0
    assert m.histogram().get_total_count() == 3


def test_window_stats() -> None:
    m = Metric("m", interval=True)
    for ms in range(1, 101):
        m.record(ms * 1_000_000)
    a = m.take_interval()
    m.record(500 * 1_000_000)
    stats = window_stats([a, m.take_interval()])
    assert stats is not None
    p50, p99, mx = stats
    assert p50 == pytest.approx(0.051, rel=2e-3)
    assert p99 == pytest.approx(0.100, rel=2e-3)
    assert mx == pytest.approx(0.5, rel=2e-3)
    assert window_stats([]) is None
    assert window_stats([Metric("e", interval=True).take_interval()]) is None


# -- encoding ---------------------------------------------------------------------------------


@given(st.lists(any_value, max_size=100))
@settings(max_examples=60)
def test_encoded_round_trip(values: list[int]) -> None:
    m = of(values, "send_delay")
    enc = pickle.loads(pickle.dumps(EncodedMetric.of(m)))
    back = enc.decode()
    assert back.name == "send_delay"
    assert exact_figures(back) == exact_figures(m)
    assert hist_counts(back.histogram()) == hist_counts(m.histogram())
    assert back.summary() == m.summary()


def test_encoded_empty_metric() -> None:
    enc = EncodedMetric.of(Metric("x"))
    assert enc.hdr == b"" and enc.count == 0
    back = enc.decode()
    assert back.count == 0 and back.histogram().get_total_count() == 0


def test_decoded_metrics_merge_exactly() -> None:
    a, b = of([1_000, 50_000_000]), of([-3, TOP_NS * 2, 7_000_000])
    total = EncodedMetric.of(a).decode()
    total.merge(EncodedMetric.of(b).decode())
    assert exact_figures(total) == exact_figures(of([1_000, 50_000_000, -3, TOP_NS * 2, 7_000_000]))


# -- summary ----------------------------------------------------------------------------------


def test_summary_shape() -> None:
    m = of([1_000_000, 2_000_000, 3_000_000, 4_000_000])
    s = m.summary()
    assert {"count", "mean_s", "min_s", "max_s", "percentiles_s", "hdr"} <= s.keys()
    assert set(s["percentiles_s"]) == {"50", "90", "99", "99.9"} == set(REPORT_PERCENTILES)
    assert (s["count"], s["mean_s"], s["min_s"], s["max_s"]) == (4, 0.0025, 0.001, 0.004)
    assert s["percentiles_s"]["50"] == pytest.approx(0.002, rel=1e-3)
    assert s["percentiles_s"]["99.9"] == 0.004
    assert "negative" not in s and "over_range" not in s
    decoded = HdrHistogram.decode(s["hdr"])
    assert decoded.get_total_count() == 4


def test_summary_of_empty_metric() -> None:
    s = Metric("x").summary()
    assert s["count"] == 0
    assert s["mean_s"] is s["min_s"] is s["max_s"] is s["hdr"] is None
    assert s["percentiles_s"] == dict.fromkeys(REPORT_PERCENTILES)


def test_metric_set() -> None:
    ms = MetricSet()
    ms["b"].record(1_000)
    ms["a"]
    ms["b"].record(2_000)
    assert ms["b"].count == 2 and ms["b"].name == "b"
    assert list(ms.summaries()) == ["a", "b"]
    assert ms.summaries()["a"]["count"] == 0


def test_metric_without_interval_refuses_to_pretend() -> None:
    with pytest.raises(ValueError, match="no interval"):
        of([1]).take_interval()


@given(st.lists(st.integers(min_value=0, max_value=HIGHEST_US * 1000), max_size=200))
@settings(max_examples=100)
def test_inline_index_matches_hdrh(values: list[int]) -> None:
    """The inline counts index is hdrh's own: same counts as record_value would give."""
    m = of(values)
    ref = new_histogram()
    for v in values:
        ref.record_value(v // 1000)
    assert hist_counts(m.histogram()) == hist_counts(ref)
