"""One capacity step judged: a run's result document and the backlog samples taken while it
sent become a :class:`~bench.capacity.search.Trial` (for the search) and the step's entry in
capacity.json. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.capacity.search import Trial
from bench.config.capacity import CapacityConfig
from bench.core.backlog import Backlog, Sample, late_share, measure
from bench.verdict.keeping_up import Limits, checks, ratio
from bench.verdict.sla import Check

FAULT_COUNTS = ("rejected", "failed", "undelivered", "in_flight_at_stop")
BORDER = (0.75, 1.33)  # a keeping-up signal this near its limit (observed / limit): repeat
SLA_BORDER = 0.05  # a latency check (op < or <=) within 5 % of its limit: repeat
PERCENTILES = ("50", "90", "99")


def limits_of(cfg: CapacityConfig) -> Limits:
    return Limits(cfg.backlog_z, cfg.backlog_floor, cfg.behind_share, cfg.late_share)


@dataclass(frozen=True, slots=True)
class Judged:
    trial: Trial
    entry: dict[str, Any]


def delay_metric(doc: dict[str, Any]) -> str:
    metrics = doc.get("metrics", {})
    for name in ("send_delay", "receive_delay", "delivery_delay"):
        if name in metrics:
            return name
    return "send_delay"


def latency(doc: dict[str, Any], metric: str) -> dict[str, float | None]:
    """The metric's mean, p50, p90, p99 and max in seconds (None: no values)."""
    m = doc.get("metrics", {}).get(metric) or {}
    pct = m.get("percentiles_s") or {}
    out: dict[str, float | None] = {"mean": m.get("mean_s")}
    for p in PERCENTILES:
        out[f"p{p}"] = pct.get(p)
    out["max"] = m.get("max_s")
    return out


def _borderline(keeping: Sequence[Check], sla: Sequence[dict[str, Any]]) -> bool:
    for c in keeping[:2]:
        r = ratio(c)
        if r is not None and BORDER[0] <= r <= BORDER[1]:
            return True
    for d in sla:
        if d.get("op") not in ("<", "<="):
            continue  # availability and filter rates: not a matter of load's noise
        obs, lim = d.get("observed"), d.get("limit")
        if not (isinstance(obs, int | float) and isinstance(lim, int | float) and lim):
            continue
        if abs(obs - lim) / abs(lim) <= SLA_BORDER:
            return True
    return False


def judge(
    rate: float,
    doc: dict[str, Any],
    samples: Sequence[Sample],
    window: tuple[float, float],
    cfg: CapacityConfig,
) -> Judged:
    """The step at *rate*: its run's *doc*, the *samples* of its counts and the measured
    *window* (seconds from the start of sending)."""
    counts = doc.get("counts", {})
    backlog: Backlog | None = measure(samples, *window)
    late = late_share(int(counts.get("late", 0)), int(counts.get("sent", 0)))
    keeping = checks(backlog, late, limits_of(cfg))
    sla = list(doc.get("sla", {}).get("checks", []))
    failed = [c.name for c in keeping if not c.passed]
    failed += [str(c["name"]) for c in sla if not c.get("pass")]
    status = doc.get("run", {}).get("status", "completed")
    if status != "completed" and not failed:
        failed.append(f"run.{status}")
    faults = [k for k in FAULT_COUNTS if int(counts.get(k, 0)) > 0]
    passed = not failed
    overloaded = any(
        c.name in ("backlog_growth", "delivery_behind") for c in keeping if not c.passed
    )
    hint = backlog.delivered_rate if overloaded and backlog is not None else None
    trial = Trial(
        rate,
        passed=passed,
        fault_free=passed and not faults,
        failed=tuple(failed),
        faults=tuple(faults) or tuple(failed),
        borderline=_borderline(keeping, sla),
        hint=hint,
    )
    metric = delay_metric(doc)
    entry: dict[str, Any] = {
        "rate": rate,
        "verdict": "pass" if passed else "fail",
        "fault_free": trial.fault_free,
        "failed": failed,
        "faults": faults,
        "borderline": trial.borderline,
        "signals": [c.as_dict() for c in keeping] + sla,
        "backlog": backlog.as_dict() if backlog is not None else None,
        "backlog_slope": round(backlog.slope, 3) if backlog is not None else None,
        "late_share": round(late, 4),
        "latency_metric": metric,
        "latency_s": latency(doc, metric),
        "counts": {
            k: counts.get(k, 0)
            for k in ("planned", "sent", "accepted", "delivered", *FAULT_COUNTS, "late")
        },
        "status": status,
    }
    return Judged(trial, entry)
