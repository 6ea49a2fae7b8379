"""The month to date from a monitor store, judged like a run: each SLA clause, the error
budget spent, the burn rate and the projection to month end (:mod:`bench.core.month`).

Each stored window stands for one SLA minute (in production a window *is* a minute; a
test's short window scales the month down). Elapsed minutes are the windows from the first one
observed this month up to *now*; fault minutes are the windows judged faults (more than 10 % of
active users affected, as in a run). Google Workspace's uptime counts a window down when more
than 5 % of its requests failed.

The settings a month is judged by — profile, time zone, boundary day and ``sla.thresholds`` —
are those the monitor last started with (kept in the store's meta table by :func:`keep_settings`),
unless the caller names others. A windowed threshold (``send_delay.p99[1h] < 5m``) must hold in
every tumbling window of that length, built from the stored per-window histograms.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from hdrh.histogram import HdrHistogram

from bench.config.thresholds import Threshold, parse_threshold
from bench.core.availability import FAULT_SHARE
from bench.core.hdr import new_histogram
from bench.core.month import Budget, minutes_between, month_bounds
from bench.monitor.store import DELIVERED, FAILED, LATE, LOST, NS, Store
from bench.run.intervallog import HistStats
from bench.verdict.sla import GOOGLE_MINUTE_FAIL_SHARE, Window, evaluate

DELAYS = ("send_delay", "receive_delay", "submit_latency", "inbound.submit_latency")


DEFAULTS: dict[str, Any] = {"tz": "UTC", "boundary_day": 1, "profile": "exmail"}


def keep_settings(
    store: Store, tz: str, boundary_day: int, profile: str, thresholds: Sequence[Threshold]
) -> None:
    """Remember what the month is judged by, for ``monitor status`` and ``/metrics``."""
    store.set_meta("tz", tz)
    store.set_meta("boundary_day", str(boundary_day))
    store.set_meta("profile", profile)
    store.set_meta("thresholds", json.dumps([t.text for t in thresholds]))


def settings(store: Store, **given: Any) -> dict[str, Any]:
    """The settings to judge by: those *given* (not None), else the kept ones, else defaults;
    ``thresholds`` as parsed :class:`Threshold`s."""
    out = dict(DEFAULTS)
    for key in ("tz", "boundary_day", "profile"):
        kept = store.meta(key)
        if kept is not None:
            out[key] = int(kept) if key == "boundary_day" else kept
    texts = json.loads(store.meta("thresholds") or "[]")
    out["thresholds"] = tuple(parse_threshold(t) for t in texts)
    out.update({k: v for k, v in given.items() if v is not None})
    return out


def _windows(
    store: Store, thresholds: Sequence[Threshold], first: int, last: int
) -> dict[float, list[Window]]:
    """Each windowed threshold's tumbling windows over stored windows *first* ≤ w < *last*
    (aligned to the month's start), keyed by length in seconds."""
    lengths = {t.window_s for t in thresholds if t.window_s is not None}
    if not lengths:
        return {}
    per_window = store.histograms_by_window(first, last)
    window_s = store.window_ns / NS
    out: dict[float, list[Window]] = {}
    for length in lengths:
        per = max(round(length / window_s), 1)
        groups: dict[int, dict[str, HdrHistogram]] = {}
        for w, hists in sorted(per_window.items()):
            merged = groups.setdefault((w - first) // per, {})
            for metric, h in hists.items():
                merged.setdefault(metric, new_histogram()).add(h)
        out[length] = [
            (g * per * window_s, {m: HistStats(h) for m, h in hs.items()})
            for g, hs in sorted(groups.items())
        ]
    return out


def _outages(store: Store, first: int, last: int, tz: str) -> list[dict[str, Any]]:
    w_s, zone = store.window_ns / NS, ZoneInfo(tz)
    return [
        {
            "start": datetime.fromtimestamp(a * w_s, zone).isoformat(),
            "end": datetime.fromtimestamp((b + 1) * w_s, zone).isoformat(),
            "windows": b - a + 1,
            "failed": failed,
            "lost": lost,
        }
        for a, b, failed, lost in store.outages(first, last)
    ]


def month_to_date(
    store: Store,
    now_ns: int,
    tz: str | None = None,
    boundary_day: int | None = None,
    profile: str | None = None,
    thresholds: Sequence[Threshold] | None = None,
) -> dict[str, Any]:
    """The month holding *now_ns* (Unix ns) to date, as a JSON-able dict; settings not given
    are the kept ones (:func:`settings`)."""
    cfg = settings(store, tz=tz, boundary_day=boundary_day, profile=profile, thresholds=thresholds)
    tz, boundary_day, profile = cfg["tz"], cfg["boundary_day"], cfg["profile"]
    start, end = month_bounds(datetime.fromtimestamp(now_ns / NS, UTC), tz, boundary_day)
    start_ns = round(start.timestamp() * NS)
    end_ns = round(end.timestamp() * NS)
    first, now_w = store.window_of(start_ns), store.window_of(now_ns)
    store.refresh_outages(first, now_w + 1)
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
    stats = {name: HistStats(h) for name, h in hists.items()}
    for name in DELAYS:  # the values the checks judge
        hs = stats.get(name)
        if hs is not None and hs.count:
            metrics[name] = {k: hs.stat(k) for k in ("count", "mean", "max", "p50", "p99")}
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
        tuple(cfg["thresholds"]),
        stats,
        lost,
        directions,
        availability,
        _windows(store, cfg["thresholds"], first, now_w + 1),
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
        "outages": _outages(store, first, now_w + 1, tz),
        "metrics": metrics,
        "profile": profile,
        "thresholds": [t.text for t in cfg["thresholds"]],
        **verdict.as_dict(),
    }
