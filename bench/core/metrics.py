"""Latency metrics: an HDR histogram with the exact count, sum, min and max beside it. Pure.

Values are recorded in nanoseconds and kept in the histogram in microseconds, from 1 µs to
4 hours at 3 significant digits. A value beyond the range is recorded at the top of the range
and counted in ``over_range``; a negative value is recorded as 0 — in the histogram and in the
exact figures alike, so no minimum or mean goes below 0 — and counted in ``negative``: nothing
is dropped. (An interval between two hosts' events comes out negative when mailsla reads the
first event after the second: e.g. the post office sees a real MTA's relay before the
generator has read that MTA's 250.) Means and maxima come from the exact figures, never from
buckets. Histograms cross process boundaries encoded, and merge exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.core.hdr import (
    HIGHEST_US,
    counts,
    decode,
    index_params,
    new_histogram,
    set_totals,
    sync_totals,
)

REPORT_PERCENTILES = ("50", "90", "99", "99.9")
_EMPTY_LO = 1 << 62  # min/max before the first value: any value replaces them
_EMPTY_HI = -(1 << 62)


class Metric:
    """One latency metric: whole-run histogram and exact figures; optionally an interval
    histogram (values since the last :meth:`take_interval`) for live windows.

    :meth:`record` is on the hot path (several calls per message): it computes the HDR counts
    index inline (``int.bit_length`` instead of hdrh's ``bin()``-based arithmetic: ~3× hdrh's
    ``record_value``, measured by ``mailsla selftest --fast-paths``) and keeps the histogram's
    own totals in step only when read.
    """

    __slots__ = (
        "_counts",
        "_hi",
        "_icounts",
        "_lo",
        "_mask",
        "_sbc",
        "_shbm",
        "_shc",
        "count",
        "hist",
        "interval",
        "name",
        "negative",
        "over_range",
        "sum_ns",
    )

    def __init__(self, name: str, *, interval: bool = False) -> None:
        self.name = name
        self.hist = new_histogram()
        self.interval = new_histogram() if interval else None
        self._counts = counts(self.hist)
        self._icounts = counts(self.interval) if self.interval is not None else None
        # below _sbc µs (2 ms), the counts index is the value: see hdr.IndexParams
        self._mask, self._shbm, self._shc, self._sbc = index_params(self.hist)
        self.count = 0
        self.sum_ns = 0
        self._lo = _EMPTY_LO  # exact min and max; read as min_ns / max_ns (0 when empty)
        self._hi = _EMPTY_HI
        self.negative = 0
        self.over_range = 0

    def record(self, value_ns: int) -> None:
        """Record one value in nanoseconds; a negative one is recorded as 0 and counted."""
        if value_ns < 0:  # a clock read after the fact (see the module docstring)
            self.negative += 1
            value_ns = 0
        self.count += 1
        self.sum_ns += value_ns
        # Comparisons, not min()/max(): a call costs more on the hot path.
        if value_ns < self._lo:  # noqa: PLR1730
            self._lo = value_ns
        if value_ns > self._hi:  # noqa: PLR1730
            self._hi = value_ns
        us = value_ns // 1000
        if us < self._sbc:  # the first 2 ms: bucket 0, where the index is the value
            self._counts[us] += 1
            if self._icounts is not None:
                self._icounts[us] += 1
            return
        if us > HIGHEST_US:
            self.over_range += 1
            us = HIGHEST_US
        # hdrh's _counts_index_for(), with unit_magnitude 0 (hdr.IndexParams):
        bucket = (us | self._mask).bit_length() - self._shbm - 1
        index = ((bucket + 1) << self._shbm) + (us >> bucket) - self._shc
        self._counts[index] += 1
        if self._icounts is not None:
            self._icounts[index] += 1

    @property
    def min_ns(self) -> int:
        return self._lo if self.count else 0

    @min_ns.setter
    def min_ns(self, v: int) -> None:
        self._lo = v

    @property
    def max_ns(self) -> int:
        return self._hi if self.count else 0

    @max_ns.setter
    def max_ns(self, v: int) -> None:
        self._hi = v

    def track_interval(self) -> None:
        """Keep an interval histogram from now on (values since the last take)."""
        if self.interval is None:
            self.interval = new_histogram()
            self._icounts = counts(self.interval)

    def histogram(self) -> HdrHistogram:
        """The whole-run histogram, its totals set from the exact figures."""
        h = self.hist
        if not self.count:
            return set_totals(h, 0, h.min_value, h.max_value)
        lo = min(max(self.min_ns // 1000, 0), HIGHEST_US)
        return set_totals(h, self.count, lo, min(max(self.max_ns // 1000, 0), HIGHEST_US))

    def take_interval(self) -> HdrHistogram:
        """The histogram of values recorded since the last call (and start a new one)."""
        if self.interval is None:
            raise ValueError(f"metric {self.name} keeps no interval histogram")
        h = sync_totals(self.interval)
        self.interval = new_histogram()
        self._icounts = counts(self.interval)
        return h

    def merge(self, other: Metric) -> None:
        """Add *other*'s values to this metric, exactly."""
        if other.count == 0:
            return
        if self.count == 0:
            self.min_ns, self.max_ns = other.min_ns, other.max_ns
        else:
            self.min_ns = min(self.min_ns, other.min_ns)
            self.max_ns = max(self.max_ns, other.max_ns)
        self.count += other.count
        self.sum_ns += other.sum_ns
        self.negative += other.negative
        self.over_range += other.over_range
        self.hist.add(other.histogram())
        if self.interval is not None and other.interval is not None:
            self.interval.add(sync_totals(other.interval))

    @property
    def mean_s(self) -> float | None:
        return self.sum_ns / self.count / 1e9 if self.count else None

    def percentile_s(self, q: float) -> float | None:
        """Value at percentile *q* (0–100) in seconds, never above the exact max."""
        if not self.count:
            return None
        if q >= 100:
            return self.max_ns / 1e9
        v = self.histogram().get_value_at_percentile(q) / 1e6
        return float(min(max(v, self.min_ns / 1e9), self.max_ns / 1e9))

    def stat(self, name: str) -> float | None:
        """``count``, ``mean``, ``min``, ``max`` or ``pNN[.N]``; None when nothing recorded."""
        if name == "count":
            return float(self.count)
        if not self.count:
            return None
        if name == "mean":
            return self.mean_s
        if name == "min":
            return self.min_ns / 1e9
        if name == "max":
            return self.max_ns / 1e9
        if name.startswith("p"):
            return self.percentile_s(float(name[1:]))
        raise KeyError(name)

    def summary(self) -> dict[str, Any]:
        """The result.json form: count, mean/min/max, percentiles, encoded histogram."""
        pct = {p: self.percentile_s(float(p)) for p in REPORT_PERCENTILES}
        out: dict[str, Any] = {
            "count": self.count,
            "mean_s": self.mean_s,
            "min_s": self.min_ns / 1e9 if self.count else None,
            "max_s": self.max_ns / 1e9 if self.count else None,
            "sum_s": self.sum_ns / 1e9,
            "percentiles_s": pct,
            "hdr": self.histogram().encode().decode("ascii") if self.count else None,
            "hdr_unit": "us",
        }
        if self.negative:
            out["negative"] = self.negative
        if self.over_range:
            out["over_range"] = self.over_range
        return out


@dataclass(frozen=True, slots=True)
class EncodedMetric:
    """A metric as it crosses a process boundary: exact figures plus encoded histogram."""

    name: str
    count: int
    sum_ns: int
    min_ns: int
    max_ns: int
    negative: int
    over_range: int
    hdr: bytes

    @classmethod
    def of(cls, m: Metric) -> EncodedMetric:
        return cls(
            m.name,
            m.count,
            m.sum_ns,
            m.min_ns,
            m.max_ns,
            m.negative,
            m.over_range,
            m.histogram().encode() if m.count else b"",
        )

    def decode(self) -> Metric:
        m = Metric(self.name)
        m.count, m.sum_ns = self.count, self.sum_ns
        if self.count:
            m.min_ns, m.max_ns = self.min_ns, self.max_ns
        m.negative, m.over_range = self.negative, self.over_range
        if self.hdr:
            m.hist = decode(self.hdr)
            m._counts = counts(m.hist)
        return m


class MetricSet(dict[str, Metric]):
    """Metrics by name, created on first use (with an interval histogram once
    :meth:`track_intervals` was called)."""

    keep_intervals = False

    def __missing__(self, name: str) -> Metric:
        m = self[name] = Metric(name, interval=self.keep_intervals)
        return m

    def track_intervals(self) -> None:
        """Every metric, present and future, keeps an interval histogram."""
        self.keep_intervals = True
        for m in self.values():
            m.track_interval()

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {name: m.summary() for name, m in sorted(self.items())}


def window_stats(hists: list[HdrHistogram]) -> tuple[float, float, float] | None:
    """p50, p99 and max (seconds) over a few interval histograms, for the live view."""
    total = new_histogram()
    for h in hists:
        total.add(h)
    if total.get_total_count() == 0:
        return None
    p = total.get_percentile_to_value_dict([50, 99])
    return p[50] / 1e6, p[99] / 1e6, total.get_max_value() / 1e6
