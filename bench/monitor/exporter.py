"""The monitor's ``/metrics`` endpoint (``prometheus_client``). Each scrape reads the store,
so the values equal ``mailsla monitor status`` at that moment: counters of probes by
direction, outcome and failed stage; classic-bucket histograms of send and receive delay
(from the stored HDR histograms, month to date); gauges of the month-to-date SLA and budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import start_http_server
from prometheus_client.registry import Collector, CollectorRegistry

from bench.core import hdr
from bench.core.month import month_bounds
from bench.monitor.status import month_to_date, settings
from bench.monitor.store import NS, Store

BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600)
HIST = {
    "send_delay": "mailsla_send_delay_seconds",
    "receive_delay": "mailsla_receive_delay_seconds",
}


class MonitorCollector(Collector):
    def __init__(self, db: Path, clock: Callable[[], int] = time.time_ns, **status: Any) -> None:
        self.db, self.clock, self.status = db, clock, status

    def collect(self) -> Iterator[Metric]:
        store = Store(self.db)
        try:
            now = self.clock()
            st = month_to_date(store, now, **self.status)
            yield from _counters(st)
            yield from _histograms(store, now, self.status)
            yield from _gauges(st)
        finally:
            store.close()


def _counters(st: dict[str, Any]) -> Iterator[Metric]:
    c = CounterMetricFamily(
        "mailsla_probes",
        "Probes by direction and outcome, month to date",
        labels=["direction", "outcome"],
    )
    for key, n in st["counts"].items():
        d, outcome = key.split(".", 1)
        if outcome != "inflight":  # not monotonic: mailsla_probes_inflight, a gauge
            c.add_metric([d, outcome], n)
    yield c
    f = CounterMetricFamily(
        "mailsla_probe_failures",
        "Probes failed at an SMTP stage, month to date",
        labels=["direction", "stage"],
    )
    for key, n in st["failed_by_stage"].items():
        d, stage = key.split(".", 1)
        f.add_metric([d, stage], n)
    yield f


def _histograms(store: Store, now: int, status: dict[str, Any]) -> Iterator[Metric]:
    from datetime import UTC, datetime

    cfg = settings(store, **status)
    start, _ = month_bounds(datetime.fromtimestamp(now / NS, UTC), cfg["tz"], cfg["boundary_day"])
    first = store.window_of(round(start.timestamp() * NS))
    hists = store.histograms(first, store.window_of(now) + 1)
    for metric, name in HIST.items():
        fam = HistogramMetricFamily(name, f"{metric.replace('_', ' ')} of probes, month to date")
        h = hists.get(metric)
        if h is not None:
            per = [0] * len(BUCKETS_S)
            total = 0
            for i, n in hdr.buckets(h):
                v = h.get_value_from_index(i) / 1e6
                total += n
                for j, b in enumerate(BUCKETS_S):
                    if v <= b:
                        per[j] += n
            rows = [(repr(float(b)), per[j]) for j, b in enumerate(BUCKETS_S)]
            rows.append(("+Inf", total))
            fam.add_metric([], rows, sum_value=h.get_mean_value() * total / 1e6)
        yield fam


def _gauges(st: dict[str, Any]) -> Iterator[Metric]:
    b = st["budget"]
    values = {
        "mailsla_month_budget_minutes": (
            "Fault minutes the SLA allows this month",
            b["budget_min"],
        ),
        "mailsla_month_fault_minutes": ("Fault minutes month to date", b["fault_min"]),
        "mailsla_month_elapsed_minutes": ("Minutes observed this month", b["elapsed_min"]),
        "mailsla_month_budget_spent_ratio": ("Share of the budget spent", b["budget_spent_share"]),
        "mailsla_month_burn_rate": (
            "Month-to-date budget burn rate (1: on budget)",
            b["burn_rate"],
        ),
        "mailsla_month_projected_fault_minutes": (
            "Fault minutes projected to month end",
            b["projected_fault_min"],
        ),
        "mailsla_month_no_fault_ratio": (
            "Month-to-date no-fault rate",
            st["availability"]["no_fault_rate"],
        ),
        "mailsla_month_connectivity_ratio": (
            "Month-to-date connectivity rate",
            st["availability"]["connectivity_rate"],
        ),
        "mailsla_probes_inflight": ("Probes sent and not yet resolved", st["inflight"]),
        "mailsla_sla_pass": (
            "1 when every SLA check passes month to date",
            st["verdict"] == "pass",
        ),
    }
    for name, (doc, v) in values.items():
        if v is not None:
            yield GaugeMetricFamily(name, doc, value=float(v))
    checks = GaugeMetricFamily(
        "mailsla_sla_check_pass",
        "1 when this check (an SLA clause or a threshold) passes month to date",
        labels=["check", "source"],
    )
    for c in st["checks"]:
        checks.add_metric([c["name"], c["source"]], float(c["pass"]))
    yield checks
    for key, m in st["metrics"].items():
        if key in HIST:
            yield GaugeMetricFamily(
                f"mailsla_month_{key}_mean_seconds", f"Mean {key}, month to date", value=m["mean"]
            )
            yield GaugeMetricFamily(
                f"mailsla_month_{key}_max_seconds", f"Max {key}, month to date", value=m["max"]
            )


def serve(
    db: Path, host: str, port: int, clock: Callable[[], int] = time.time_ns, **status: Any
) -> WSGIServer:
    """Start /metrics on *host*:*port* (0: any free port) in a thread; the server."""
    registry = CollectorRegistry()
    registry.register(MonitorCollector(db, clock, **status))
    server, _ = start_http_server(port, host, registry)
    return server
