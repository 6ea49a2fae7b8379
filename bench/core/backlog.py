"""Is the system keeping up? The backlog (mail accepted but not yet delivered) over a step's
measured steady state, its slope against its noise, the delivered rate against the accepted
rate, and the share of sends that started late. Pure: the capacity driver feeds it samples of
a run's cumulative counts (the ones its time series keeps, taken more often).

A queue that grows for five minutes meets a one-minute mean today and breaks it tomorrow: a
step whose backlog grows beyond its noise is not sustainable, whatever its latency says.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_POINTS = 3  # fewer samples in the window: no slope to speak of


@dataclass(frozen=True, slots=True)
class Sample:
    """A run's cumulative counts at *t_s* seconds from its start."""

    t_s: float
    accepted: int
    delivered: int

    @property
    def backlog(self) -> int:
        return self.accepted - self.delivered


@dataclass(frozen=True, slots=True)
class Backlog:
    """The backlog over a window of a run: its least-squares slope (messages a second), the
    scatter of the samples about that line (``noise``, messages), the growth the slope makes
    over the window (``growth`` = slope x span), and the accepted and delivered rates."""

    span_s: float
    points: int
    start: int  # the backlog at the window's first sample
    end: int  # ... and at its last
    mean: float
    slope: float
    noise: float
    accepted_rate: float
    delivered_rate: float

    @property
    def growth(self) -> float:
        return self.slope * self.span_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "span_s": round(self.span_s, 3),
            "points": self.points,
            "start": self.start,
            "end": self.end,
            "mean": round(self.mean, 3),
            "slope_per_s": round(self.slope, 3),
            "noise": round(self.noise, 3),
            "growth": round(self.growth, 3),
            "accepted_rate": round(self.accepted_rate, 3),
            "delivered_rate": round(self.delivered_rate, 3),
        }


def window(samples: Sequence[Sample], start_s: float, end_s: float) -> list[Sample]:
    """The samples taken in [start_s, end_s]."""
    return [s for s in samples if start_s <= s.t_s <= end_s]


def measure(samples: Sequence[Sample], start_s: float, end_s: float) -> Backlog | None:
    """The backlog over [start_s, end_s] (None: fewer than :data:`MIN_POINTS` samples in it,
    or a window of no length)."""
    pts = window(samples, start_s, end_s)
    if len(pts) < MIN_POINTS:
        return None
    span = pts[-1].t_s - pts[0].t_s
    if span <= 0:
        return None
    ts = [p.t_s for p in pts]
    bs = [float(p.backlog) for p in pts]
    if len(set(ts)) < 2:
        return None
    fit = statistics.linear_regression(ts, bs)
    residuals = [b - (fit.slope * t + fit.intercept) for t, b in zip(ts, bs, strict=True)]
    noise = math.sqrt(sum(r * r for r in residuals) / max(len(pts) - 2, 1))
    return Backlog(
        span_s=span,
        points=len(pts),
        start=pts[0].backlog,
        end=pts[-1].backlog,
        mean=statistics.fmean(bs),
        slope=fit.slope,
        noise=noise,
        accepted_rate=(pts[-1].accepted - pts[0].accepted) / span,
        delivered_rate=(pts[-1].delivered - pts[0].delivered) / span,
    )


def growth_limit(b: Backlog, *, z: float, floor_share: float) -> float:
    """How much growth over the window is still noise: *z* times the scatter, and at least
    *floor_share* of the mail accepted in the window (a slope too small to matter at the
    search's precision)."""
    return max(z * b.noise, floor_share * b.accepted_rate * b.span_s, 1.0)


def late_share(late: int, sent: int) -> float:
    """The share of sends that started later than ``load.late_after`` behind their schedule."""
    return late / sent if sent > 0 else 0.0
