"""Regression gate: compare two result.json documents (``mailsla.result/1``) stat by stat. Pure.

Each latency metric present in both runs gives rows for ``count``, ``mean``, ``p50``, ``p99``,
``p99.9`` and ``max``; the rates ``availability.no_fault_rate``, ``availability.connectivity_rate``
and ``counts.delivered_ratio`` (delivered / planned) give a row each.

A stat **regressed** when the current run is worse than the baseline beyond its tolerance *and*
beyond the noise the data allows. Each side's value becomes an interval:

- a percentile of n samples: the values at ranks q·n ± z·sqrt(n·q·(1−q)) (z = 2.58, ~99 %) in
  the run's HDR histogram, widened to the edges of their buckets (3 significant digits);
- ``max``: the order statistic ~z ranks below the top, up to the exact max;
- ``mean``: mean ± z·stddev/sqrt(n), the stddev taken from the histogram;
- ``count``: n ± z·sqrt(n) (Poisson); a rate p of n trials: p ± z·sqrt(p·(1−p)/n).

REGRESSED means the intervals do not overlap once the baseline's is widened by the tolerance;
``worse-within-noise`` means the values differ by more than the tolerance but the intervals
overlap. Larger is worse for latencies, smaller for counts and rates.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.config.names import KNOWN_METRICS
from bench.config.units import format_duration, parse_duration
from bench.core.hdr import bucket_high, bucket_low, buckets, decode
from bench.errors import UsageError

SCHEMA = "mailsla.result/1"
Z = 2.58  # two-sided ~99 %
HDR_PRECISION = 1e-3  # 3 significant digits: values within 0.1 % share a bucket
STATS = ("count", "mean", "p50", "p99", "p99.9", "max")
RATES = (
    ("availability", "no_fault_rate"),
    ("availability", "connectivity_rate"),
    ("counts", "delivered_ratio"),
)
RATE_STATS = tuple(stat for _, stat in RATES)

OK, BETTER, NOISE, REGRESSED, MISSING = "ok", "better", "worse-within-noise", "REGRESSED", "missing"


class CompareError(UsageError):
    """A document that cannot be compared (not a result, broken histogram); one line."""


class ToleranceError(UsageError):
    """A ``--tolerance`` that cannot be parsed; the message quotes the input."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    """How much worse is still fine: ``rel`` (share of the baseline) or ``abs`` (seconds,
    messages, or a rate 0–1), whichever allows more."""

    rel: float = 0.0
    abs: float = 0.0

    def allowed(self, base: float) -> float:
        return max(abs(base) * self.rel, self.abs)

    def text(self, kind: str) -> str:
        parts = [f"{self.rel * 100:g}%"] if self.rel else []
        if self.abs or not parts:
            if kind == "rate":
                parts.append(f"{self.abs * 100:g}pp")
            elif kind == "count":
                parts.append(f"{self.abs:g}")
            else:
                parts.append(format_duration(self.abs))
        return " or ".join(parts)


FLOOR_S = 0.001  # latency deltas below 1 ms are never a regression by default
DEFAULTS: dict[str, Tolerance] = {
    "count": Tolerance(rel=0.10),
    "mean": Tolerance(rel=0.10, abs=FLOOR_S),
    "p50": Tolerance(rel=0.10, abs=FLOOR_S),
    "p99": Tolerance(rel=0.20, abs=FLOOR_S),
    "p99.9": Tolerance(rel=0.50, abs=FLOOR_S),
    "max": Tolerance(rel=0.50, abs=FLOOR_S),
    **{stat: Tolerance(abs=0.001) for stat in RATE_STATS},  # 0.1 percentage points
}


@dataclass(frozen=True, slots=True)
class Tolerances:
    """Defaults per stat, overridden per ``metric.stat`` or for every metric (``*.stat``)."""

    overrides: Mapping[tuple[str, str], Tolerance] = field(default_factory=dict)

    def get(self, metric: str, stat: str) -> Tolerance:
        for key in ((metric, stat), ("*", stat)):
            if key in self.overrides:
                return self.overrides[key]
        return DEFAULTS[stat]


_FORM = "write metric.stat=VALUE, e.g. send_delay.p99=20% or send_delay.p99=5ms"


def parse_tolerance(text: str) -> tuple[tuple[str, str], Tolerance]:
    """Parse ``send_delay.p99=20%`` (relative), ``send_delay.p99=5ms`` (absolute),
    ``send_delay.count=50`` or ``availability.no_fault_rate=0.5%`` (percentage points)."""
    lhs, eq, value = text.partition("=")
    lhs, value = lhs.strip(), value.strip()
    stat = next((s for s in sorted(DEFAULTS, key=len, reverse=True) if lhs.endswith("." + s)), "")
    if not eq or not value or not lhs:
        raise ToleranceError(f"{text!r} is not a tolerance ({_FORM})")
    if not stat:
        guess = lhs.rsplit(".", 1)[-1] if "." in lhs else lhs
        stats = ", ".join(DEFAULTS)
        raise ToleranceError(f"{text!r}: unknown stat {guess!r} (known: {stats}; {_FORM})")
    metric = lhs[: -len(stat) - 1]
    rate_metrics = {m for m, s in RATES if s == stat}
    if stat in RATE_STATS and metric not in rate_metrics:
        raise ToleranceError(f"{text!r}: {stat} belongs to {', '.join(sorted(rate_metrics))}")
    if stat not in RATE_STATS and metric != "*" and metric not in KNOWN_METRICS:
        raise ToleranceError(
            f"{text!r}: unknown metric {metric!r} (known: *, {', '.join(KNOWN_METRICS)})"
        )
    try:
        if stat in RATE_STATS:
            number = value.removesuffix("pp").removesuffix("%").strip()
            if number == value:
                raise ValueError(f"{value!r}: a rate tolerance is in percentage points (0.1%)")
            tol = Tolerance(abs=float(number) / 100)
        elif value.endswith("%"):
            tol = Tolerance(rel=float(value[:-1].strip()) / 100)
        elif stat == "count":
            tol = Tolerance(abs=float(int(value)))
        else:
            tol = Tolerance(abs=parse_duration(value))
    except ValueError as exc:
        msg = str(exc) if str(exc).startswith("'") else f"{value!r} is not a number"
        raise ToleranceError(f"{text!r}: {msg}") from None
    if tol.rel < 0 or tol.abs < 0 or not math.isfinite(tol.rel + tol.abs):
        raise ToleranceError(f"{text!r}: a tolerance must be a finite value >= 0")
    return (metric, stat), tol


def parse_tolerances(texts: Iterable[str]) -> Tolerances:
    """All ``--tolerance`` options; a later one for the same key wins."""
    return Tolerances(dict(parse_tolerance(t) for t in texts))


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value and the interval the data allows around it."""

    value: float
    lo: float
    hi: float


@dataclass(frozen=True, slots=True)
class Row:
    """One compared stat. ``kind``: ``s`` (seconds), ``count`` or ``rate``."""

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
        if stat == "count":
            return Estimate(n, n - Z * math.sqrt(n), n + Z * math.sqrt(n))
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


def _metric_order(names: Iterable[str]) -> list[str]:
    rank = {m: i for i, m in enumerate(KNOWN_METRICS)}
    return sorted(set(names), key=lambda m: (rank.get(m, len(rank)), m))


def _compare_metric(name: str, b: Any, c: Any, tols: Tolerances) -> list[Row]:
    bn = b["count"] if isinstance(b, dict) else 0
    cn = c["count"] if isinstance(c, dict) else 0
    if not bn and not cn:
        return []
    tol_text = tols.get(name, "count").text("count")
    if not cn:
        where = "no data in current" if isinstance(c, dict) else "not in current"
        return [Row(name, "count", "count", bn, cn, tol_text, REGRESSED, where)]
    if not bn:
        where = "no data in baseline" if isinstance(b, dict) else "not in baseline"
        return [Row(name, "count", "count", None, cn, tol_text, MISSING, where)]
    bs, cs = _Side(name, b), _Side(name, c)
    rows = []
    for stat in STATS:
        be, ce = bs.estimate(stat), cs.estimate(stat)
        sides = (("baseline", bn, be), ("current", cn, ce))
        open_ = [f"{side} ({k} samples)" for side, k, e in sides if math.isinf(e.hi)]
        note = f"too few samples to bound {stat}: " + ", ".join(open_) if open_ else ""
        kind = "count" if stat == "count" else "s"
        rows.append(_row(name, stat, kind, be, ce, tols.get(name, stat), note))
    return rows


def _row(
    metric: str, stat: str, kind: str, be: Estimate, ce: Estimate, tol: Tolerance, note: str = ""
) -> Row:
    verdict = _judge(be, ce, tol, larger_is_worse=kind == "s")
    ci = {"baseline_ci": (be.lo, be.hi), "current_ci": (ce.lo, ce.hi)}
    return Row(metric, stat, kind, be.value, ce.value, tol.text(kind), verdict, note, **ci)


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
    """Rows for every stat of every metric with data in either run, then the rates."""
    tols = tolerances or Tolerances()
    check_doc(baseline, "baseline")
    check_doc(current, "current")
    bm, cm = baseline["metrics"], current["metrics"]
    rows: list[Row] = []
    for name in _metric_order([*bm, *cm]):
        rows += _compare_metric(name, bm.get(name), cm.get(name), tols)
    for metric, stat in RATES:
        tol = tols.get(metric, stat)
        br, cr = _rate(baseline, metric, stat), _rate(current, metric, stat)
        if br is not None and cr is not None:
            rows.append(_row(metric, stat, "rate", _rate_estimate(*br), _rate_estimate(*cr), tol))
        elif br is not None or cr is not None:
            verdict, note = (REGRESSED, "current") if cr is None else (MISSING, "baseline")
            b_v, c_v = br[0] if br else None, cr[0] if cr else None
            tt = tol.text("rate")
            rows.append(Row(metric, stat, "rate", b_v, c_v, tt, verdict, f"no data in {note}"))
    return rows


def regressed(rows: Iterable[Row]) -> list[Row]:
    """The rows that fail the gate."""
    return [r for r in rows if r.verdict == REGRESSED]
