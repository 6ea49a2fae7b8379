"""The month to date from a monitor store, judged like a run: each SLA clause, the error
budget spent, the burn rate and the projection to month end (:mod:`bench.core.month`).

Each stored window stands for one SLA minute (in production a window *is* a minute; a
test's short window scales the month down). Elapsed minutes are the windows from the first one
observed this month up to *now*; fault minutes are the windows judged faults (more than 10 % of
active users affected, as in a run). Google Workspace's uptime counts a window down when more
than 5 % of its requests failed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bench.core.availability import FAULT_SHARE
from bench.core.month import Budget, minutes_between, month_bounds
from bench.monitor.store import DELIVERED, FAILED, LATE, LOST, NS, Store
from bench.verdict.sla import GOOGLE_MINUTE_FAIL_SHARE, evaluate

DELAYS = ("send_delay", "receive_delay", "submit_latency", "inbound.submit_latency")


class _Stats:
    def __init__(self, values: dict[str, float | None]) -> None:
        self.values = values

    def stat(self, name: str) -> float | None:
        return self.values.get(name)


def month_to_date(
    store: Store, now_ns: int, tz: str = "UTC", boundary_day: int = 1, profile: str = "exmail"
) -> dict[str, Any]:
    """The month holding *now_ns* (Unix ns) to date, as a JSON-able dict."""
    start, end = month_bounds(datetime.fromtimestamp(now_ns / NS, UTC), tz, boundary_day)
    start_ns = round(start.timestamp() * NS)
    end_ns = round(end.timestamp() * NS)
    first, now_w = store.window_of(start_ns), store.window_of(now_ns)
    window_min = store.window_ns / NS / 60
    rows = store.windows(first, now_w + 1)
    faults = sum(1 for _, n, aff, _, _, _ in rows if aff > FAULT_SHARE * n)
    conn = sum(1 for _, n, _, dis, _, _ in rows if dis > FAULT_SHARE * n)
    down = sum(1 for *_, req, bad in rows if bad > GOOGLE_MINUTE_FAIL_SHARE * req)
    elapsed = float(now_w - rows[0][0] + 1) if rows else 0.0  # since first observed
    month_min = minutes_between(start, end) / window_min
    budget = Budget(month_min, min(elapsed, month_min), float(faults))
    hists = store.histograms(first, now_w + 1)
    metrics: dict[str, dict[str, float | None]] = {}
    for name in DELAYS:
        h = hists.get(name)
        if h is None or h.get_total_count() == 0:
            continue
        metrics[name] = {
            "count": float(h.get_total_count()),
            "mean": h.get_mean_value() / 1e6,
            "max": h.get_max_value() / 1e6,
            "p50": h.get_value_at_percentile(50) / 1e6,
            "p99": h.get_value_at_percentile(99) / 1e6,
        }
    counts = store.counts(start_ns, end_ns)
    by_state: dict[str, int] = {}
    by_stage: dict[str, int] = {}
    for (direction, state, stage), n in counts.items():
        key = f"{direction}.{state}"
        by_state[key] = by_state.get(key, 0) + n
        if state == FAILED:
            by_stage[f"{direction}.{stage}"] = by_stage.get(f"{direction}.{stage}", 0) + n
    directions = tuple(sorted({d for d, _, _ in counts})) or ("send",)
    lost = {d: by_state.get(f"{d}.{LOST}", 0) for d in directions}
    availability = {
        "no_fault_rate": None if not rows else 1 - faults / elapsed,
        "connectivity_rate": None if not rows else 1 - conn / elapsed,
        "google_uptime": None if not rows else 1 - down / elapsed,
    }
    verdict = evaluate(
        profile,
        (),
        {k: _Stats(v) for k, v in metrics.items()},
        lost,
        directions,
        availability,
    )
    return {
        "month": {"start": start.isoformat(), "end": end.isoformat(), "tz": tz},
        "window_s": store.window_ns / NS,
        "windows": len(rows),
        "fault_windows": faults,
        "connectivity_fault_windows": conn,
        "google_down_windows": down,
        "availability": availability,
        "budget": budget.as_dict(),
        "counts": dict(sorted(by_state.items())),
        "failed_by_stage": dict(sorted(by_stage.items())),
        "delivered": sum(
            by_state.get(f"{d}.{s}", 0) for d in directions for s in (DELIVERED, LATE)
        ),
        "inflight": len(store.inflight()),
        "metrics": metrics,
        "profile": profile,
        **verdict.as_dict(),
    }
