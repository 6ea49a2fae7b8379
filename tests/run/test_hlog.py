"""bench.run.intervallog and bench.run.timeseries: interval histograms in HdrHistogram's log
format 1.3,
read back by hdrh's own reader; statistics over a histogram; the CSV time series."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.config.scenario import PARENT_METRICS, from_dict
from bench.core.hdr import HIGHEST_US, counts_span, new_histogram
from bench.core.metrics import MetricSet
from bench.run.intervallog import (
    LEGEND,
    HistStats,
    header_lines,
    interval_line,
    java_date,
)
from bench.run.timeseries import CSV_FILE, HLOG_FILE, TimeSeries, csv_header, series_for
from bench.run.wiring import resolve_workers
from bench.selftest.through_cli import p99_after

START = 1_712_345_678.123
us_values = st.lists(st.integers(0, HIGHEST_US), max_size=40)


def hist_of(values_us: list[int]) -> HdrHistogram:
    h = new_histogram()
    for v in values_us:
        h.record_value(v)
    return h


def read_log(path: Path) -> list[HdrHistogram]:
    reader = HistogramLogReader(str(path), new_histogram())
    out = []
    while (h := reader.get_next_interval_histogram()) is not None:
        out.append(h)
    reader.close()
    return out


# -- the format ---------------------------------------------------------------------------
def test_header_lines_are_hdrhistograms() -> None:
    lines = header_lines(START, ["mailsla run r1; interval 1s"])
    assert lines[0] == "#[Histogram log format version 1.3]"
    assert lines[1] == f"#[StartTime: 1712345678.123 (seconds since epoch), {java_date(START)}]"
    assert java_date(START) == "Fri Apr 05 19:34:38 UTC 2024"
    assert lines[2] == "#[BaseTime: 1712345678.123 (seconds since epoch)]"
    assert "microseconds" in lines[3] and "milliseconds" in lines[3]
    assert lines[4] == "#[mailsla run r1; interval 1s]"
    assert lines[-1] == LEGEND
    assert (
        LEGEND
        == '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
    )


def test_interval_line_and_bad_tags() -> None:
    line = interval_line("send_delay", 2.0, 1.0004, 48_127, "HISTFAAAA")
    assert line == "Tag=send_delay,2.000,1.000,48.127,HISTFAAAA"
    for tag in ("", "a,b", "a b"):
        with pytest.raises(ValueError, match="tag"):
            interval_line(tag, 0, 1, 0, "x")


# -- statistics over a histogram -----------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(us_values)
def test_counts_span_matches_a_plain_scan(values: list[int]) -> None:
    h = hist_of(values)
    nonzero = [i for i in range(h.counts_len) if h.counts[i]]
    want = (sum(h.counts[i] for i in nonzero), nonzero[0], nonzero[-1]) if nonzero else (0, -1, -1)
    assert counts_span(h) == want


@settings(max_examples=60, deadline=None)
@given(us_values.filter(bool), st.sampled_from([0.1, 1, 50, 90, 99, 99.9, 100]))
def test_hist_stats_agree_with_hdrh(values: list[int], q: float) -> None:
    h = hist_of(values)
    s = HistStats(h)
    assert s.count == len(values)
    assert s.percentile_us(q) == h.get_value_at_percentile(q)
    assert s.max_us == h.get_max_value()
    assert s.stat("min") == h.get_min_value() / 1e6
    assert s.stat("mean") == pytest.approx(h.get_mean_value() / 1e6)
    assert s.stat("max") == pytest.approx(max(values) / 1e6, rel=1e-3, abs=1e-6)


def test_hist_stats_of_an_empty_histogram() -> None:
    s = HistStats(new_histogram())
    assert s.stat("count") == 0.0
    assert all(s.stat(n) is None for n in ("mean", "min", "max", "p99"))
    assert s.max_us == 0
    with pytest.raises(KeyError):
        HistStats(hist_of([5])).stat("median")


def test_metric_sets_track_intervals_for_every_metric() -> None:
    ms = MetricSet()
    ms["a"].record(1_000_000)
    assert ms["a"].interval is None
    ms.track_intervals()
    ms["a"].record(2_000_000)
    ms["stage.mail"].record(3_000_000)  # created after: tracked too
    assert ms["a"].take_interval().get_total_count() == 1
    assert ms["stage.mail"].take_interval().get_total_count() == 1
    assert ms["a"].count == 2


# -- the log, written and read back --------------------------------------------------------
def run_series(
    tmp_path: Path, interval_s: float = 1.0, ticks: int = 5, seed: int = 7
) -> tuple[TimeSeries, MetricSet]:
    """Three metrics over *ticks* one-second ticks, values drawn per tick; a partial last one."""
    rng = random.Random(seed)
    ms = MetricSet()
    ms.track_intervals()
    series = TimeSeries(tmp_path, interval_s, keep=["send_delay"], comments=["test"])
    series.start(100.0, START)
    counts = {"planned": 0, "sent": 0, "accepted": 0, "delivered": 0, "failed": 0, "rejected": 0}
    for k in range(1, ticks + 1):
        for _ in range(rng.randrange(0, 50)):
            ms["send_delay"].record(rng.randrange(1_000_000, 900_000_000))
            counts = {n: c + 1 for n, c in counts.items()}
        if k % 2:  # a metric with empty intervals
            ms["stage.mail"].record(rng.randrange(10_000, 5_000_000))
        ms["submit_latency"].record(rng.randrange(100_000, 50_000_000))
        series.take(ms)
        series.tick(100.0 + k, counts)
    ms["send_delay"].record(123_456_789)  # after the last tick: the final partial interval
    series.finish(100.0 + ticks + 0.25, START + ticks, counts, ms)
    return series, ms


def test_log_reads_back_with_hdrhs_reader(tmp_path: Path) -> None:
    series, ms = run_series(tmp_path)
    path = tmp_path / HLOG_FILE
    lines = path.read_text().splitlines()
    assert lines[0] == "#[Histogram log format version 1.3]"
    assert lines[1].startswith("#[StartTime: 1712345678.123 (seconds since epoch), ")
    assert lines[2] == "#[BaseTime: 1712345678.123 (seconds since epoch)]"
    assert "#[test]" in lines and LEGEND in lines
    hists = read_log(path)
    tags = {h.get_tag() for h in hists}
    assert tags == {"send_delay", "stage.mail", "submit_latency"}
    assert len(hists) == 3 * 6  # 5 whole intervals + the partial one, every metric each time
    body = [ln for ln in lines if ln.startswith("Tag=")]
    for tag in tags:
        mine = [h for h in hists if h.get_tag() == tag]
        whole = ms[tag].histogram()
        assert sum(h.get_total_count() for h in mine) == ms[tag].count == whole.get_total_count()
        assert max(h.get_max_value() for h in mine) == whole.get_max_value()
        total = new_histogram()
        for h in mine:
            total.add(h)
        assert list(total.counts) == list(whole.counts)
        # Interval_Max (ms) is each interval's max; start times step by the interval
        maxima = [float(ln.split(",")[3]) for ln in body if ln.startswith(f"Tag={tag},")]
        assert maxima == [round(h.get_max_value() / 1000, 3) for h in mine]
        starts = [h.get_start_time_stamp() / 1000 - START for h in mine]
        assert starts == pytest.approx([0, 1, 2, 3, 4, 5], abs=1e-3)
    ends = [round(h.get_end_time_stamp() / 1000 - START, 3) for h in hists]
    assert max(ends) == pytest.approx(5.25)
    assert [iv.index for iv in series.intervals] == [0, 1, 2, 3, 4, 5]


def test_longer_intervals_add_up_the_ticks(tmp_path: Path) -> None:
    series, ms = run_series(tmp_path, interval_s=2.0, ticks=6)
    hists = [h for h in read_log(tmp_path / HLOG_FILE) if h.get_tag() == "send_delay"]
    assert len(hists) == 4  # 0-2, 2-4, 4-6 and the partial 6-6.25
    assert [iv.index for iv in series.intervals] == [0, 1, 2, 3]
    assert sum(h.get_total_count() for h in hists) == ms["send_delay"].count


def test_pieces_handed_out_are_never_added_to(tmp_path: Path) -> None:
    ms = MetricSet()
    ms.track_intervals()
    series = TimeSeries(tmp_path, 3.0, hlog=False, csv=False)
    series.start(0.0, START)
    ms["x"].record(5_000_000)
    first = series.take(ms)["x"]
    ms["x"].record(7_000_000)
    assert series.take(ms)["x"].get_total_count() == 1
    assert first.get_total_count() == 1 and counts_span(first)[0] == 1
    assert series.take(ms) == {}  # nothing new
    assert series.tick(3.0, {}) is not None
    assert series.intervals[0].stats["x"].n == 2
    assert not (tmp_path / HLOG_FILE).exists()


def test_csv_has_one_row_per_interval(tmp_path: Path) -> None:
    _, ms = run_series(tmp_path)
    with open(tmp_path / CSV_FILE, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == csv_header(["send_delay", "stage.mail", "submit_latency"])
    assert rows[0][:7] == ["t_s", "planned", "sent", "accepted", "delivered", "failed", "rejected"]
    assert "send_delay.p50_s" in rows[0] and "stage.mail.max_s" in rows[0]
    data = rows[1:]
    assert [r[0] for r in data] == ["1.000", "2.000", "3.000", "4.000", "5.000", "5.250"]
    sent = [int(r[2]) for r in data]
    assert sent == sorted(sent)
    col = rows[0].index("stage.mail.p99_s")
    assert data[1][col] == "" and data[0][col] != ""  # no values in the second interval
    mx = rows[0].index("submit_latency.max_s")
    assert max(float(r[mx]) for r in data[:-1]) == pytest.approx(
        ms["submit_latency"].max_ns / 1e9, rel=1e-3
    )


def test_a_run_that_never_started_gets_the_headers(tmp_path: Path) -> None:
    series = TimeSeries(tmp_path / "out", 1.0)
    series.finish(5.0, START, {}, MetricSet())
    assert (tmp_path / "out" / HLOG_FILE).read_text().splitlines()[-1] == LEGEND
    assert read_log(tmp_path / "out" / HLOG_FILE) == []
    assert (tmp_path / "out" / CSV_FILE).read_text() == ",".join(csv_header([])) + "\n"


def test_worker_processes_log_only_the_parents_metrics(tmp_path: Path) -> None:
    sc = from_dict({"name": "w", "load": {"workers": 2}}, "t")
    series = series_for(resolve_workers(sc, 2), tmp_path, "run1")
    assert series is not None and series.only == frozenset(PARENT_METRICS)
    ms = MetricSet()
    ms.track_intervals()
    ms["submit_latency"].record(1_000_000)
    ms["send_delay"].record(2_000_000)
    series.start(0.0, START)
    series.take(ms)
    series.finish(1.0, START + 1, {}, ms)
    text = (tmp_path / HLOG_FILE).read_text()
    assert "only send_delay, delivery_delay, receive_delay are logged per interval" in text
    assert {h.get_tag() for h in read_log(tmp_path / HLOG_FILE)} == {"send_delay"}


def test_nothing_collected_without_files_or_live_thresholds(tmp_path: Path) -> None:
    off = {"results": {"hlog": False, "csv": False}}
    assert (
        series_for(resolve_workers(from_dict({"name": "a", **off}, "t"), 2), tmp_path, "r") is None
    )
    windowed = {"name": "b", **off, "sla": {"thresholds": ["send_delay.p99[5s] < 1s"]}}
    series = series_for(resolve_workers(from_dict(windowed, "t"), 2), tmp_path, "r")
    assert series is not None and series.keep == {"send_delay"} and not series.hlog


def test_an_unwritable_folder_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    dropped = TimeSeries(blocker / "out", 1.0).finish(0.0, START, {}, MetricSet())
    assert [d.split(":")[0] for d in dropped] == ["metrics.hlog", "timeseries.csv"]
    assert all("cannot write" in d for d in dropped)


def test_selftest_p99_after_a_warm_up_reads_only_later_intervals(tmp_path: Path) -> None:
    lines = []
    for start, value_us in ((0.0, 50_000), (1.0, 40_000), (2.0, 1_000), (3.0, 2_000)):
        h = new_histogram()
        for _ in range(100):
            h.record_value(value_us)
        lines.append(interval_line("send_delay", start, 1.0, value_us, h.encode().decode()))
    log = tmp_path / "metrics.hlog"
    log.write_text("\n".join(lines) + "\n")
    assert p99_after(log, "send_delay", 2.0) == pytest.approx(2.0, rel=1e-3)  # ms
    assert p99_after(log, "send_delay", 0.0) == pytest.approx(50.0, rel=1e-3)
    assert p99_after(log, "submit_latency", 0.0) is None


def test_steps_yield_per_metric_and_a_close_cut_short_loses_nothing(tmp_path: Path) -> None:
    """The runner lets sends run between steps and may be cancelled at any of them: each
    step leaves the series whole, and an interval is closed only at the last step."""
    ms = MetricSet()
    ms.track_intervals()
    series = TimeSeries(tmp_path, 1.0)
    series.start(0.0, START)
    for name in ("a", "b", "c"):
        ms[name].record(3_000_000)
    pieces: dict[str, HdrHistogram] = {}
    assert sum(1 for _ in series.take_steps(ms, pieces)) == 3 and set(pieces) == {"a", "b", "c"}
    closing = series.tick_steps(1.0, {"sent": 3}, closed := [])
    next(closing)  # one metric encoded, then the run is stopped
    closing.close()
    assert closed == [] and series.intervals == []
    ms["a"].record(4_000_000)
    series.finish(1.5, START + 1.5, {"sent": 4}, ms)
    logged = read_log(tmp_path / HLOG_FILE)
    assert {h.get_tag(): h.get_total_count() for h in logged} == {"a": 2, "b": 1, "c": 1}
    assert [iv.counts for iv in series.intervals] == [{"sent": 4}]
