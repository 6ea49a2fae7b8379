"""Regression gate: compare two result.json documents (``mailsla.result/1``) stat by stat. Pure.

Each latency metric present in both runs gives rows for ``mean``, ``p50``, ``p99``, ``p99.9``,
``max`` and ``count``; the rates ``availability.no_fault_rate``, ``availability.connectivity_rate``
and ``counts.delivered_ratio`` (delivered / planned) give a row each. The SLA's come first:
``send_delay``, ``receive_delay`` and the rates, then ``submit_latency`` and the other metrics,
the ``stage.*`` timings last.

A ``count`` is compared **per second** of each run's sending phase
(:func:`bench.verdict.comparable.sending_seconds`), so a shorter run is not fewer messages; a
tolerance in messages (``send_delay.count=50``) counts over the baseline's sending phase. Stages
timed once per connection keep their counts when neither run reopens connections (their number
follows ``load.sessions``, not the duration). Whether the two runs are comparable at all is
:mod:`bench.verdict.comparable`'s question; this module compares what it is given.

A stat **regressed** when the current run is worse than the baseline beyond its tolerance *and*
beyond the noise the data allows. Each side's value becomes an interval:

- a percentile of n samples: the values at ranks q·n ± z·sqrt(n·q·(1−q)) (z = 2.58, ~99 %) in
  the run's HDR histogram, widened to the edges of their buckets (3 significant digits);
- ``max``: the order statistic ~z ranks below the top, up to the exact max;
- ``mean``: mean ± z·stddev/sqrt(n), the stddev taken from the histogram;
- ``count``: (n ± z·sqrt(n)) ÷ seconds (Poisson); a rate p of n trials: p ± z·sqrt(p·(1−p)/n).

REGRESSED means the intervals do not overlap once the baseline's is widened by the tolerance;
``worse-within-noise`` means the values differ by more than the tolerance but the intervals
overlap. Larger is worse for latencies, smaller for counts and rates.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.config.names import STAGES, TIME_METRICS
from bench.config.units import format_duration
from bench.core.hdr import bucket_high, bucket_low, buckets, decode
from bench.errors import UsageError
from bench.verdict.comparable import per_second
from bench.verdict.tolerance import RATES, STATS, Tolerance, Tolerances

SCHEMA = "mailsla.result/1"
Z = 2.58  # two-sided ~99 %
HDR_PRECISION = 1e-3  # 3 significant digits: values within 0.1 % share a bucket
# The order of the rows: the SLA's first, then the other metrics, the stages last.
SLA_FIRST = ("send_delay", "receive_delay", "availability", "counts")
_LATER = ("submit_latency", "delivery_delay", *TIME_METRICS)
ORDER = tuple(dict.fromkeys((*SLA_FIRST, *_LATER, *(f"inbound.{m}" for m in _LATER))))
STAGE_ORDER = tuple(f"{p}stage.{s}" for p in ("", "inbound.") for s in STAGES)

OK, BETTER, NOISE, REGRESSED, MISSING = "ok", "better", "worse-within-noise", "REGRESSED", "missing"


class CompareError(UsageError):
    """A document that cannot be compared (not a result, broken histogram); one line."""


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value and the interval the data allows around it."""

    value: float
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class Row:
    """One compared stat. ``kind``: ``s`` (seconds), ``per_s`` (a count per second of the
    sending phase; the counts in ``baseline_n`` and ``current_n``), ``count`` or ``rate``."""

    metric: str
    stat: str
    kind: str
    baseline: float | None
    current: float | None
    tolerance: str
    verdict: str
    note: str = ""
    baseline_ci: tuple[float, float] | None = None
    current_ci: tuple[float, float] | None = None
    baseline_n: int | None = None
    current_n: int | None = None

    @property
    def name(self) -> str:
        return f"{self.metric}.{self.stat}"

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline

    @property
    def delta_pct(self) -> float | None:
        d = self.delta
        if d is None or self.baseline is None or self.baseline == 0:
            return None
        return d / abs(self.baseline) * 100

    def as_dict(self) -> dict[str, Any]:
        keys = ("metric", "stat", "kind", "baseline", "current", "delta", "delta_pct")
        d: dict[str, Any] = {k: getattr(self, k) for k in keys}
        d.update(tolerance=self.tolerance, verdict=self.verdict, note=self.note)
        d.update(baseline_ci=_finite(self.baseline_ci), current_ci=_finite(self.current_ci))
        if self.kind == "per_s":
            d.update(baseline_count=self.baseline_n, current_count=self.current_n)
        return d


def _finite(ci: tuple[float, float] | None) -> list[float | None] | None:
    """An interval for JSON: an open side (too few samples) as None."""
    return None if ci is None else [x if math.isfinite(x) else None for x in ci]


def check_doc(doc: object, label: str) -> dict[str, Any]:
    """*doc* if it is a result document this module can read, else :class:`CompareError`."""
    if not isinstance(doc, dict):
        raise CompareError(f"{label}: not a mailsla result (a JSON object is expected)")
    if doc.get("schema") != SCHEMA:
        raise CompareError(
            f"{label}: not a mailsla result (schema {doc.get('schema')!r}, expected {SCHEMA!r})"
        )
    metrics, counts = doc.get("metrics"), doc.get("counts")
    if not isinstance(metrics, dict) or not isinstance(counts, dict):
        raise CompareError(f"{label}: 'metrics' and 'counts' must be objects")
    for name, m in metrics.items():
        if not isinstance(m, dict) or not isinstance(m.get("count"), int):
            raise CompareError(f"{label}: metrics.{name} has no whole-number 'count'")
    return doc


class _Side:
    """One run's summary of one metric, with its histogram decoded on first use."""

    def __init__(self, name: str, summary: Mapping[str, Any]) -> None:
        self.name = name
        self.s = summary
        self.n: int = summary["count"]
        self._hist: HdrHistogram | None = None
        self._decoded = False
        self._cum: list[int] = []
        self._idx: list[int] = []

    def hist(self) -> HdrHistogram | None:
        if not self._decoded:
            self._decoded = True
            enc = self.s.get("hdr")
            if enc and self.s.get("hdr_unit", "us") == "us":
                try:
                    h = decode(enc)
                except Exception as exc:  # hdrh raises TypeError, zlib.error, its own
                    raise CompareError(f"metrics.{self.name}.hdr: not a histogram: {exc}") from None
                total = 0
                for i, c in buckets(h):
                    total += c
                    self._cum.append(total)
                    self._idx.append(i)
                if total == self.n:
                    self._hist = h
        return self._hist

    def at_rank(self, h: HdrHistogram, k: int, high: bool) -> float:
        """Seconds at rank *k* (1-based): its bucket's lowest or highest equivalent value."""
        i = self._idx[min(bisect_left(self._cum, k), len(self._idx) - 1)]
        return (bucket_high(h, i) if high else bucket_low(h, i)) / 1e6

    def _num(self, key: str) -> float:
        v = self.s.get(key)
        if not isinstance(v, int | float):
            raise CompareError(f"metrics.{self.name}.{key}: a number is expected")
        return float(v)

    def estimate(self, stat: str) -> Estimate:
        n = self.n
        h = self.hist()
        if stat == "mean":
            v = self._num("mean_s")
            se = h.get_stddev() / 1e6 / math.sqrt(n) if h is not None else 0.0
            return Estimate(v, v - Z * se, v + Z * se)
        top = self._num("max_s")
        if stat == "max":
            v, q = top, 1 - 1 / n
        else:
            pct = self.s.get("percentiles_s") or {}
            raw = pct.get(stat[1:])
            v = float(raw) if isinstance(raw, int | float) else math.nan
            q = float(stat[1:]) / 100
            if math.isnan(v):
                if h is None:
                    raise CompareError(f"metrics.{self.name}: no {stat} and no histogram")
                v = min(self.at_rank(h, max(1, math.ceil(q * n)), True), top)
        if h is None:
            return Estimate(v, v * (1 - HDR_PRECISION), v * (1 + HDR_PRECISION))
        # ranks beyond the sample leave that side of the interval open: too few samples
        half = Z * math.sqrt(n * q * (1 - q))
        k_lo, k_hi = math.floor(q * n - half), math.ceil(q * n + half)
        lo = self.at_rank(h, k_lo, False) if k_lo >= 1 else 0.0
        if stat == "max" or k_hi == n:
            hi = top
        else:
            hi = min(self.at_rank(h, k_hi, True), top) if k_hi < n else math.inf
        return Estimate(v, min(lo, v), max(hi, v))


def _judge(base: Estimate, cur: Estimate, tol: Tolerance, larger_is_worse: bool) -> str:
    sign = 1.0 if larger_is_worse else -1.0
    # in "badness" terms (larger is worse), the baseline widened by the tolerance
    b, c = base.value * sign, cur.value * sign
    b_lo, b_hi = sorted((base.lo * sign, base.hi * sign))
    c_lo, c_hi = sorted((cur.lo * sign, cur.hi * sign))
    if c - b > tol.allowed(base.value):
        return REGRESSED if c_lo > b_hi + tol.allowed(b_hi) else NOISE
    if b - c > tol.allowed(base.value) and c_hi < b_lo - tol.allowed(b_lo):
        return BETTER
    return OK


def _rank(metric: str) -> tuple[int, int, str]:
    """Where a metric's rows go: the SLA's first, the stages last, unknown names after."""
    for group, order in enumerate((ORDER, STAGE_ORDER)):
        if metric in order:
            return group, order.index(metric), metric
    return 2, 0, metric


def _count_estimate(n: int, seconds: float | None) -> Estimate:
    t = seconds or 1.0
    return Estimate(n / t, (n - Z * math.sqrt(n)) / t, (n + Z * math.sqrt(n)) / t)


def _count_row(
    name: str, bn: int | None, cn: int, tol: Tolerance, per_s: tuple[float, float] | None, note: str
) -> Row:
    """The ``count`` row: per second of each sending phase, or as counts when *per_s* is None.
    *bn* is None when the baseline does not have the metric."""
    tb, tc = per_s or (None, None)
    be, ce = _count_estimate(bn or 0, tb), _count_estimate(cn, tc)
    if tb is not None and tc is not None and not note and not math.isclose(tb, tc):
        note = f"per second: {bn} in {format_duration(tb)} vs {cn} in {format_duration(tc)}"
    if not bn:
        verdict = MISSING
    elif not cn:
        verdict = REGRESSED
    else:  # a tolerance in messages is over the baseline's sending phase
        scaled = Tolerance(rel=tol.rel, abs=tol.abs / tb) if tb else tol
        verdict = _judge(be, ce, scaled, larger_is_worse=False)
    both = bool(bn and cn)
    return Row(
        name,
        "count",
        "per_s" if per_s else "count",
        None if bn is None else be.value,
        ce.value,
        tol.text("count"),
        verdict,
        note,
        baseline_ci=(be.lo, be.hi) if both else None,
        current_ci=(ce.lo, ce.hi) if both else None,
        baseline_n=bn,
        current_n=cn,
    )


def _compare_metric(
    name: str, b: Any, c: Any, tols: Tolerances, per_s: tuple[float, float] | None
) -> list[Row]:
    bn = b["count"] if isinstance(b, dict) else 0
    cn = c["count"] if isinstance(c, dict) else 0
    if not bn and not cn:
        return []
    tol = tols.get(name, "count")
    if not cn:
        where = "no data in current" if isinstance(c, dict) else "not in current"
        return [_count_row(name, bn, cn, tol, per_s, where)]
    if not bn:
        where = "no data in baseline" if isinstance(b, dict) else "not in baseline"
        return [_count_row(name, None, cn, tol, per_s, where)]
    bs, cs = _Side(name, b), _Side(name, c)
    rows = []
    for stat in STATS:
        if stat == "count":
            rows.append(_count_row(name, bn, cn, tol, per_s, ""))
            continue
        be, ce = bs.estimate(stat), cs.estimate(stat)
        sides = (("baseline", bn, be), ("current", cn, ce))
        open_ = [f"{side} {k}" for side, k, e in sides if math.isinf(e.hi)]
        note = f"too few samples to bound {stat}: " + ", ".join(open_) if open_ else ""
        rows.append(_row(name, stat, "s", be, ce, tols.get(name, stat), note))
    return rows


def _row(
    metric: str, stat: str, kind: str, be: Estimate, ce: Estimate, tol: Tolerance, note: str = ""
) -> Row:
    verdict = _judge(be, ce, tol, larger_is_worse=kind == "s")
    return Row(
        *(metric, stat, kind, be.value, ce.value, tol.text(kind), verdict, note),
        baseline_ci=(be.lo, be.hi),
        current_ci=(ce.lo, ce.hi),
    )


def _rate(doc: Mapping[str, Any], metric: str, stat: str) -> tuple[float, int] | None:
    """A rate and the number of trials behind it, None when the run has none."""
    if metric == "counts":
        c = doc["counts"]
        planned, delivered = c.get("planned"), c.get("delivered")
        if not isinstance(planned, int) or not isinstance(delivered, int) or planned <= 0:
            return None
        return delivered / planned, planned
    a = doc.get("availability")
    if not isinstance(a, dict) or not isinstance(a.get(stat), int | float):
        return None
    windows = a.get("windows")
    return float(a[stat]), windows if isinstance(windows, int) and windows > 0 else 1


def _rate_estimate(p: float, n: int) -> Estimate:
    se = math.sqrt(max(p * (1 - p), 0.0) / n)
    return Estimate(p, p - Z * se, p + Z * se)


def compare(
    baseline: Mapping[str, Any], current: Mapping[str, Any], tolerances: Tolerances | None = None
) -> list[Row]:
    """Rows for every stat of every metric with data in either run, and the rates; the SLA's
    first (see :data:`ORDER`)."""
    tols = tolerances or Tolerances()
    check_doc(baseline, "baseline")
    check_doc(current, "current")
    bm, cm = baseline["metrics"], current["metrics"]
    by_metric: dict[str, list[Row]] = {}
    for name in {*bm, *cm}:
        per_s = per_second(name, baseline, current)
        by_metric[name] = _compare_metric(name, bm.get(name), cm.get(name), tols, per_s)
    for metric, stat in RATES:
        tol = tols.get(metric, stat)
        br, cr = _rate(baseline, metric, stat), _rate(current, metric, stat)
        rows = by_metric.setdefault(metric, [])
        if br is not None and cr is not None:
            rows.append(_row(metric, stat, "rate", _rate_estimate(*br), _rate_estimate(*cr), tol))
        elif br is not None or cr is not None:
            verdict, note = (REGRESSED, "current") if cr is None else (MISSING, "baseline")
            b_v, c_v = br[0] if br else None, cr[0] if cr else None
            tt = tol.text("rate")
            rows.append(Row(metric, stat, "rate", b_v, c_v, tt, verdict, f"no data in {note}"))
    return [row for m in sorted(by_metric, key=_rank) for row in by_metric[m]]


def regressed(rows: Iterable[Row]) -> list[Row]:
    """The rows that fail the gate."""
    return [r for r in rows if r.verdict == REGRESSED]
