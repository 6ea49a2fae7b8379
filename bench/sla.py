"""SLA verdicts: the ``exmail`` profile and user thresholds, turned into checks. Pure.

A threshold reads ``metric.stat OP value``: ``send_delay.p99 < 500ms``, ``submit_latency.mean
<= 1s``, ``send_delay.count >= 1000``. With a window, ``metric.stat[1m] OP value``, it must hold
in every window of that length (tumbling, aligned to the run's start), judged from interval
histograms the caller hands in. Parse errors quote the user's text.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bench.stages import STAGES
from bench.units import format_duration, parse_duration

TIME_METRICS = (
    "submit_latency",
    "service_time",
    "schedule_lag",
    "send_delay",
    "delivery_delay",
    "receive_delay",
)
_LANE_METRICS = (*TIME_METRICS[:3], *(f"stage.{s}" for s in STAGES))
KNOWN_METRICS = (*TIME_METRICS, *_LANE_METRICS[3:], *(f"inbound.{m}" for m in _LANE_METRICS))

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.]*?)\.(?P<stat>count|mean|min|max|p[0-9]+(?:\.[0-9]+)?)"
    r"(?:\[(?P<window>[^\]]*)\])?\s*(?P<op><=|>=|<|>)\s*(?P<value>\S.*?)\s*$"
)
_FORM = (
    "write metric.stat OP value, e.g. send_delay.p99 < 500ms, "
    "or metric.stat[window] OP value, e.g. send_delay.p99[1m] < 500ms"
)


class ThresholdError(ValueError):
    """A threshold that cannot be parsed; the message quotes the input."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed threshold. ``limit`` is in seconds, or a plain number for ``count``;
    ``window_s``: it must hold in every window of this length (None: over the whole run);
    ``abort_on_fail``: the run stops when it fails, checked from ``grace_s`` after the start."""

    metric: str
    stat: str
    op: str
    limit: float
    text: str
    window_s: float | None = None
    abort_on_fail: bool = False
    grace_s: float = 0.0

    @property
    def live(self) -> bool:
        """Checked while the run goes (a window, or abort_on_fail), not only at its end."""
        return self.window_s is not None or self.abort_on_fail

    @property
    def name(self) -> str:
        if self.window_s is None:
            return f"{self.metric}.{self.stat}"
        return f"{self.metric}.{self.stat}[{format_duration(self.window_s)}]"

    def holds(self, observed: float) -> bool:
        return OPS[self.op](observed, self.limit)


def parse_threshold(text: str) -> Threshold:
    """Parse ``"send_delay.p99 < 500ms"`` into a :class:`Threshold`."""
    if not isinstance(text, str):
        raise ThresholdError(f"{text!r} is not a threshold ({_FORM})")
    m = _THRESHOLD.match(text)
    if not m:
        raise ThresholdError(f"{text!r} is not a threshold ({_FORM})")
    metric, stat, op, value = m["metric"], m["stat"], m["op"], m["value"]
    window_s = None
    if m["window"] is not None:
        try:
            window_s = parse_duration(m["window"].strip())
        except ValueError as exc:
            raise ThresholdError(f"{text!r}: window: {exc}") from None
        if window_s <= 0:
            raise ThresholdError(f"{text!r}: window {m['window']!r} must be longer than 0")
    if metric not in KNOWN_METRICS:
        raise ThresholdError(
            f"{text!r}: unknown metric {metric!r} (known: {', '.join(KNOWN_METRICS)})"
        )
    if stat.startswith("p"):
        q = float(stat[1:])
        if not 0 < q <= 100:
            raise ThresholdError(f"{text!r}: percentile {stat!r} must be between p0 and p100")
    if stat == "count":
        try:
            limit = float(int(value))
        except ValueError:
            raise ThresholdError(f"{text!r}: a count needs a whole number, not {value!r}") from None
    else:
        try:
            limit = parse_duration(value)
        except ValueError as exc:
            raise ThresholdError(f"{text!r}: {exc}") from None
    return Threshold(metric, stat, op, limit, text.strip(), window_s)


class StatSource(Protocol):
    """What a check needs of a metric: a named statistic, None when there is no data."""

    def stat(self, name: str) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict line: ``observed OP limit`` and whether it passed."""

    name: str
    op: str
    limit: float
    observed: float | None
    passed: bool
    source: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "op": self.op,
            "limit": self.limit,
            "observed": self.observed,
            "pass": self.passed,
            "source": self.source,
        }
        if self.note:
            d["note"] = self.note
        return d


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "pass" if self.passed else "fail",
            "checks": [c.as_dict() for c in self.checks],
        }


# The exmail SLA (shared/sla-source.md, clause 4): mean delay ≤ 1 minute, any message ≤ 1 hour.
EXMAIL_MEAN_S = 60.0
EXMAIL_MAX_S = 3600.0
EXMAIL_RATE = 0.999  # no-fault rate and network connectivity, each over the month
PROFILES = ("exmail", "none")


def _check(
    metrics: Mapping[str, StatSource], metric: str, stat: str, op: str, limit: float, source: str
) -> Check:
    src = metrics.get(metric)
    observed = src.stat(stat) if src is not None else None
    if observed is None:
        return Check(f"{metric}.{stat}", op, limit, None, False, source, "no data")
    if math.isnan(observed):
        return Check(f"{metric}.{stat}", op, limit, None, False, source, "no data")
    return Check(f"{metric}.{stat}", op, limit, observed, OPS[op](observed, limit), source)


Window = tuple[float, Mapping[str, StatSource]]  # (start in seconds from the run's start, metrics)


def check_windows(t: Threshold, windows: Sequence[Window], source: str = "threshold") -> Check:
    """*t* in every window (start_s, metrics) of length ``t.window_s``: the observed value is
    the worst window's (the highest for ``<``/``<=``, the lowest for ``>``/``>=``). Windows
    where the statistic has no value (nothing recorded) are skipped; none at all is no data."""
    width = t.window_s or 0.0
    seen: list[tuple[float, float]] = []
    for start, metrics in windows:
        src = metrics.get(t.metric)
        v = src.stat(t.stat) if src is not None else None
        if v is not None and not math.isnan(v):
            seen.append((v, start))
    if not seen:
        return Check(t.name, t.op, t.limit, None, False, source, "no data")
    low = t.op in (">", ">=")
    worst, start = min(seen) if low else max(seen, key=lambda vs: (vs[0], -vs[1]))
    failed = sum(1 for v, _ in seen if not t.holds(v))
    note = f"worst window {start:g}s–{start + width:g}s, {failed} of {len(seen)} windows failed"
    return Check(t.name, t.op, t.limit, worst, failed == 0, source, note)


def check_threshold(
    t: Threshold,
    metrics: Mapping[str, StatSource],
    windows: Mapping[float, Sequence[Window]] | None = None,
) -> Check:
    """One threshold's check: over the whole run, or over its windows (by window length)."""
    if t.window_s is None:
        return _check(metrics, t.metric, t.stat, t.op, t.limit, "threshold")
    return check_windows(t, (windows or {}).get(t.window_s, ()))


def evaluate(
    profile: str,
    thresholds: tuple[Threshold, ...],
    metrics: Mapping[str, StatSource],
    undelivered: int | Mapping[str, int],
    directions: tuple[str, ...] = ("send",),
    availability: Mapping[str, float | None] | None = None,
    windows: Mapping[float, Sequence[Window]] | None = None,
) -> Verdict:
    """Checks of the profile, then of each threshold, against the run's metrics (windowed
    thresholds against *windows*, keyed by window length in seconds).

    Mail still undelivered at the end of the drain counts as over the 1-hour ceiling: the max
    check fails and says how many.
    """
    checks: list[Check] = []
    if isinstance(undelivered, int):
        undelivered = dict.fromkeys(directions, undelivered)
    if profile == "exmail":
        for direction in directions:
            lost = undelivered.get(direction, 0)
            metric = f"{direction}_delay"
            checks.append(_check(metrics, metric, "mean", "<=", EXMAIL_MEAN_S, "exmail"))
            mx = _check(metrics, metric, "max", "<=", EXMAIL_MAX_S, "exmail")
            if lost:
                mx = Check(
                    mx.name,
                    mx.op,
                    mx.limit,
                    mx.observed,
                    False,
                    mx.source,
                    f"{lost} message(s) undelivered count as over the limit",
                )
            checks.append(mx)
        if availability is not None:
            for key in ("no_fault_rate", "connectivity_rate"):
                observed = availability.get(key)
                name = f"availability.{key}"
                if observed is None:
                    checks.append(Check(name, ">=", EXMAIL_RATE, None, False, "exmail", "no data"))
                else:
                    ok = observed >= EXMAIL_RATE
                    checks.append(Check(name, ">=", EXMAIL_RATE, observed, ok, "exmail"))
    for t in thresholds:
        checks.append(check_threshold(t, metrics, windows))
    return Verdict(tuple(checks))
