"""How much worse a compared stat may be: the defaults per stat and the ``--tolerance`` grammar
(``send_delay.p99=20%``, ``=5ms``, ``send_delay.count=50``, ``availability.no_fault_rate=0.5%``).
Pure; errors quote the input."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from bench.config.names import KNOWN_METRICS
from bench.config.units import format_duration, parse_duration
from bench.errors import UsageError

STATS = ("mean", "p50", "p99", "p99.9", "max", "count")
RATES = (
    ("availability", "no_fault_rate"),
    ("availability", "connectivity_rate"),
    ("counts", "delivered_ratio"),
)
RATE_STATS = tuple(stat for _, stat in RATES)


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
            elif kind in ("count", "per_s"):
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
    ``send_delay.count=50`` (messages over the baseline's sending phase) or
    ``availability.no_fault_rate=0.5%`` (percentage points)."""
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
