"""Abort on fail: thresholds marked ``abort_on_fail`` are checked while the run goes, and the
first that fails (after its grace) stops it. Pure.

A windowed threshold is checked over the latest window of closed intervals, an unwindowed one
over the whole run so far. No data is never a failure here: a metric without values yet (or
reported only at the end, by worker processes) cannot stop a run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence

from bench.config.thresholds import Threshold
from bench.config.units import format_duration
from bench.verdict.sla import Check, StatSource, Verdict, check_threshold, check_windows

LastWindow = Callable[[float], tuple[float, Mapping[str, StatSource]]]


@dataclasses.dataclass(frozen=True, slots=True)
class Trip:
    """A threshold that failed during the run: when, and the check that failed."""

    threshold: Threshold
    at_s: float
    check: Check

    @property
    def reason(self) -> str:
        t = self.threshold
        return f"threshold {t.text} failed at {self.at_s:.1f}s: observed {self.observed}"

    @property
    def observed(self) -> str:
        v = self.check.observed
        if v is None:
            return "no data"
        if self.threshold.stat == "count":
            text = f"{v:.0f}"
        elif abs(v) < 1e-3:
            text = f"{v * 1e6:.0f}µs"
        elif abs(v) < 1:
            text = f"{v * 1e3:.3g}ms"
        else:
            text = f"{v:.3f}s"
        w = self.threshold.window_s
        return text if w is None else f"{text} over the last {format_duration(w)}"


class AbortGate:
    """The run's ``abort_on_fail`` thresholds."""

    def __init__(self, thresholds: Sequence[Threshold]) -> None:
        self.rules = tuple(t for t in thresholds if t.abort_on_fail)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def check(
        self, elapsed_s: float, metrics: Mapping[str, StatSource], last_window: LastWindow
    ) -> Trip | None:
        """The first rule past its grace that fails on data, or None."""
        for t in self.rules:
            if elapsed_s < t.grace_s:
                continue
            if t.window_s is None:
                c = check_threshold(t, metrics)
            else:
                c = check_windows(t, [last_window(t.window_s)])
            if c.observed is not None and not c.passed:
                return Trip(t, elapsed_s, c)
        return None


def mark_aborted(verdict: Verdict, thresholds: Sequence[Threshold], trip: Trip) -> Verdict:
    """The final verdict with the aborting threshold's check failed, noting the abort (its
    final value may pass: the run stopped before more data came)."""
    first = len(verdict.checks) - len(thresholds)
    checks = list(verdict.checks)
    for i, t in enumerate(thresholds):
        if t is trip.threshold and first + i >= 0:
            c = checks[first + i]
            note = f"aborted the run at {trip.at_s:.1f}s (observed {trip.observed})"
            checks[first + i] = dataclasses.replace(
                c, passed=False, note=f"{c.note}; {note}" if c.note else note
            )
    return Verdict(tuple(checks))
