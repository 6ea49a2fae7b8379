"""SLA verdicts: the ``exmail`` profile and user thresholds (:mod:`bench.config.thresholds`),
turned into checks. Pure.

With a window, ``metric.stat[1m] OP value``, a threshold must hold in every window of that length
(tumbling, aligned to the run's start), judged from interval histograms the caller hands in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from bench.config.thresholds import OPS, Threshold
from bench.core.filters import Rate


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
    state: str = ""  # "not_shown": the sample cannot support the claim (never a pass)
    needed: int | None = None  # with "not_shown": messages the claim needs

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
        if self.state:
            d["state"] = self.state
        if self.needed is not None:
            d["needed"] = self.needed
        return d

    @property
    def not_shown(self) -> bool:
        return self.state == "not_shown"


@dataclass(frozen=True, slots=True)
class Verdict:
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def state(self) -> str:
        """ "pass", "fail", or "not_shown" when nothing failed but a claim was not shown."""
        if self.passed:
            return "pass"
        return "not_shown" if all(c.passed or c.not_shown for c in self.checks) else "fail"

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": self.state, "checks": [c.as_dict() for c in self.checks]}


# The exmail SLA (shared/sla-source.md, clause 4): mean delay ≤ 1 minute, any message ≤ 1 hour.
EXMAIL_MEAN_S = 60.0
EXMAIL_MAX_S = 3600.0
EXMAIL_RATE = 0.999  # no-fault rate and network connectivity, each over the month
# Google Workspace: a minute is downtime when more than 5 % of its requests fail; 99.9 % uptime.
GOOGLE_MINUTE_FAIL_SHARE = 0.05
GOOGLE_RATE = 0.999
# Exchange Online: the monthly average delivery time at most one minute.
EXCHANGE_MEAN_S = 60.0


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


def _pct(x: float) -> str:
    return f"{100 * x:.4g} %"


def filter_checks(rates: Mapping[str, Rate]) -> list[Check]:
    """The filtering clauses, in three states: pass only when a rate's one-sided 95 %
    Clopper–Pearson bound meets the promise; fail when the other bound shows it broken;
    otherwise not shown — the sample cannot tell — with the messages of the class it would
    take (:mod:`bench.core.filters`). Not shown is never a pass: the run's verdict is then
    "not_shown", and its exit code 1."""
    checks = []
    for name, r in rates.items():
        verdict = r.verdict
        side = "lower" if r.op == ">=" else "upper"
        note = f"{r.hits} of {r.n} {r.cls}; 95 % {side} bound {_pct(r.bound)}"
        needed = None
        if verdict == "not_shown":
            needed = r.needed
            note += f"; not shown: needs {needed:,} {r.cls} with {r.failures} failure(s)"
        checks.append(
            Check(
                f"filters.{name}",
                r.op,
                r.promise,
                r.rate,
                verdict == "pass",
                "exmail",
                note,
                state=verdict,
                needed=needed,
            )
        )
    return checks


def evaluate(
    profile: str,
    thresholds: tuple[Threshold, ...],
    metrics: Mapping[str, StatSource],
    undelivered: int | Mapping[str, int],
    directions: tuple[str, ...] = ("send",),
    availability: Mapping[str, float | None] | None = None,
    windows: Mapping[float, Sequence[Window]] | None = None,
    filters: Mapping[str, Rate] | None = None,
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
        if filters is not None:
            checks.extend(filter_checks(filters))
    checks.extend(_other_profile(profile, metrics, directions, availability))
    for t in thresholds:
        checks.append(check_threshold(t, metrics, windows))
    return Verdict(tuple(checks))


def _other_profile(
    profile: str,
    metrics: Mapping[str, StatSource],
    directions: tuple[str, ...],
    availability: Mapping[str, float | None] | None,
) -> list[Check]:
    """The ``google`` (uptime by Google's minute rule, the caller's ``google_uptime``) and
    ``exchange`` (mean delivery per direction) profiles' checks."""
    if profile == "exchange":
        return [
            _check(metrics, f"{d}_delay", "mean", "<=", EXCHANGE_MEAN_S, "exchange")
            for d in directions
        ]
    if profile == "google" and availability is not None:
        observed = availability.get("google_uptime")
        name = "availability.google_uptime"
        if observed is None:
            return [Check(name, ">=", GOOGLE_RATE, None, False, "google", "no data")]
        return [Check(name, ">=", GOOGLE_RATE, observed, observed >= GOOGLE_RATE, "google")]
    return []
