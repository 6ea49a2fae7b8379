"""Interval histograms: HdrHistogram's interval log format 1.3, statistics over a histogram,
and interval records merged into windows. Pure (the writer formats lines; the caller writes).

A log reads, as ``HistogramLogWriter`` (Java) writes it and ``hdrh.log.HistogramLogReader``
reads it back::

    #[Histogram log format version 1.3]
    #[StartTime: 1712345678.123 (seconds since epoch), Fri Apr 05 19:34:38 UTC 2024]
    #[BaseTime: 1712345678.123 (seconds since epoch)]
    #[<comments: units, interval, what is logged>]
    "StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"
    Tag=send_delay,0.000,1.000,48.127,HISTFAAAA...

Timestamps are seconds from the base time (the run's start). Histogram values are
microseconds; ``Interval_Max`` is the histogram's max divided by :data:`MAX_UNIT_RATIO`, i.e.
in milliseconds (HistogramLogProcessor: ``-outputValueUnitRatio 1000`` prints milliseconds).
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

from hdrh.histogram import HdrHistogram

from bench.core.hdr import bucket_high, bucket_low, counts_span, counts_view, new_histogram

FORMAT_VERSION = "1.3"
MAX_UNIT_RATIO = 1000.0  # microseconds -> Interval_Max in milliseconds
LEGEND = '"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"'
UNITS_COMMENT = (
    "#[Histogram values in microseconds; Interval_Max in milliseconds (max / 1000); "
    "HistogramLogProcessor -outputValueUnitRatio 1000 prints milliseconds]"
)


def java_date(epoch_s: float) -> str:
    """The date as Java's ``Date.toString()`` prints it, in UTC (``Fri Apr 05 19:34:38 UTC
    2024``)."""
    return time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(epoch_s))


def header_lines(start_epoch_s: float, comments: Iterable[str] = ()) -> list[str]:
    """The log's header: version, start and base time (the same: timestamps are relative to
    the start), the units, one ``#[...]`` line per comment, the legend."""
    return [
        f"#[Histogram log format version {FORMAT_VERSION}]",
        f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch), {java_date(start_epoch_s)}]",
        f"#[BaseTime: {start_epoch_s:.3f} (seconds since epoch)]",
        UNITS_COMMENT,
        *(f"#[{c}]" for c in comments),
        LEGEND,
    ]


def interval_line(tag: str, start_s: float, length_s: float, max_us: int, payload: str) -> str:
    """One interval: ``Tag=<tag>,<start>,<length>,<max in ms>,<base64 compressed histogram>``."""
    if not tag or any(c in tag for c in ", \t\r\n"):
        raise ValueError(f"{tag!r} cannot be a tag (no commas or spaces)")
    return f"Tag={tag},{start_s:.3f},{length_s:.3f},{max_us / MAX_UNIT_RATIO:.3f},{payload}"


@cache
def empty_payload() -> str:
    """The encoding of an empty histogram (intervals without values)."""
    return str(new_histogram().encode().decode("ascii"))


class HistStats:
    """``stat()`` of a histogram in microseconds, in seconds (a
    :class:`bench.verdict.sla.StatSource`), read from its counts: percentiles as HdrHistogram
    gives them (the highest value equivalent to the bucket), the mean from bucket midpoints, so
    within 0.1 %."""

    __slots__ = ("_cum", "count", "hi", "hist", "lo")

    def __init__(self, hist: HdrHistogram) -> None:
        self.hist = hist
        self.count, self.lo, self.hi = counts_span(hist)
        self._cum: list[int] | None = None

    def _view(self) -> memoryview:
        return counts_view(self.hist)

    @property
    def max_us(self) -> int:
        """The highest value equivalent to the top non-empty bucket (0 when empty)."""
        if not self.count:
            return 0
        return bucket_high(self.hist, self.hi)

    def percentile_us(self, q: float) -> int:
        """The value at percentile *q* (0 < q ≤ 100); 0 when empty."""
        if not self.count:
            return 0
        if self._cum is None:
            self._cum = list(itertools.accumulate(self._view()[self.lo : self.hi + 1]))
        target = max(int(min(q, 100.0) * self.count / 100 + 0.5), 1)
        i = bisect_left(self._cum, target)
        return bucket_high(self.hist, self.lo + i)

    def _mean_us(self) -> float:
        h, total = self.hist, 0
        for off, c in enumerate(self._view()[self.lo : self.hi + 1]):
            if c:
                low, high = bucket_low(h, self.lo + off), bucket_high(h, self.lo + off)
                total += c * ((low + high + 1) // 2)
        return total / self.count

    def stat(self, name: str) -> float | None:
        """``count``, ``mean``, ``min``, ``max`` or ``pNN[.N]`` in seconds; None when empty."""
        if name == "count":
            return float(self.count)
        if not self.count:
            return None
        if name == "max":
            return self.max_us / 1e6
        if name == "min":
            return bucket_low(self.hist, self.lo) / 1e6
        if name == "mean":
            return self._mean_us() / 1e6
        if name.startswith("p"):
            return self.percentile_us(float(name[1:])) / 1e6
        raise KeyError(name)


class IntervalStat(NamedTuple):
    """One metric in one interval: its count and p50, p99, max in seconds (None: no values)."""

    n: int
    p50_s: float | None
    p99_s: float | None
    max_s: float | None


EMPTY = IntervalStat(0, None, None, None)


def interval_stat(stats: HistStats) -> IntervalStat:
    if not stats.count:
        return EMPTY
    return IntervalStat(
        stats.count,
        stats.percentile_us(50) / 1e6,
        stats.percentile_us(99) / 1e6,
        stats.max_us / 1e6,
    )


@dataclass(frozen=True, slots=True)
class Interval:
    """One logged interval. ``index`` k: it began at about k × the interval length (the
    window it belongs to); ``start_s``/``length_s``: measured, from the run's start;
    ``counts``: cumulative message counts at its end; ``stats`` per logged metric;
    ``kept``: encoded histograms of the metrics that windowed thresholds need."""

    index: int
    start_s: float
    length_s: float
    counts: Mapping[str, int]
    stats: Mapping[str, IntervalStat]
    kept: Mapping[str, str]

    @property
    def end_s(self) -> float:
        return self.start_s + self.length_s


def merged(payloads: Iterable[str]) -> HdrHistogram:
    """One histogram adding up encoded histograms."""
    h = new_histogram()
    for p in payloads:
        h.decode_and_add(p)
    return h


def window_of(intervals: Sequence[Interval], metrics: Iterable[str]) -> dict[str, HistStats]:
    """The kept histograms of *metrics* over *intervals*, merged (empty when none kept)."""
    return {m: HistStats(merged(iv.kept[m] for iv in intervals if m in iv.kept)) for m in metrics}


def windows(
    intervals: Sequence[Interval], window_s: float, interval_s: float, metrics: Iterable[str]
) -> list[tuple[float, dict[str, HistStats]]]:
    """Tumbling windows of *window_s* aligned to the run's start: (start_s, stats by metric)
    for each window holding at least one interval."""
    per = max(round(window_s / interval_s), 1)
    names = tuple(metrics)
    groups: dict[int, list[Interval]] = {}
    for iv in intervals:
        groups.setdefault(iv.index // per, []).append(iv)
    return [(w * window_s, window_of(group, names)) for w, group in sorted(groups.items())]


def last_window(
    intervals: Sequence[Interval], window_s: float, interval_s: float, metrics: Iterable[str]
) -> tuple[float, dict[str, HistStats]]:
    """The latest *window_s* of intervals (sliding): (its start_s, stats by metric)."""
    per = max(round(window_s / interval_s), 1)
    tail = intervals[-per:]
    start = tail[0].start_s if tail else 0.0
    return start, window_of(tail, tuple(metrics))
