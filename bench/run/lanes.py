"""Lanes of traffic: outbound ("send": users submit, mailsla's post office receives) and inbound
("receive": mailsla acts as a source post office, a watcher sees the mailbox). Pure.

Each lane has its own :class:`Correlator`, so each keeps the accounting identity on its own;
message ids come from one schedule split between the lanes, so they are unique in the run.
This module merges the lanes' books for the live view and the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.config.scenario import Scenario
from bench.core.correlate import Correlator, Counts
from bench.core.metrics import MetricSet
from bench.load.generator import Generator
from bench.procs.parent import GeneratorFleet

INBOUND = "inbound."  # the receive lane's generator-side metrics: inbound.submit_latency, ...


@dataclass
class Lane:
    direction: str  # "send" | "receive"
    corr: Correlator
    sessions: int
    host: str = ""
    port: int = 0
    generator: Generator | GeneratorFleet | None = field(default=None)

    @property
    def in_flight(self) -> int:
        return self.corr.in_flight


def session_split(sc: Scenario) -> dict[str, int]:
    """Sessions per lane: the receive share of ``load.sessions`` goes inbound (at least one
    session each)."""
    dirs, n = sc.directions, sc.load.sessions
    if len(dirs) == 1:
        return {dirs[0]: n}
    inbound = min(max(round(n * sc.load.receive_share), 1), max(n - 1, 1))
    return {"send": max(n - inbound, 1), "receive": inbound}


def total_counts(lanes: list[Lane]) -> Counts:
    total = Counts()
    for lane in lanes:
        for key, n in lane.corr.counts.as_dict().items():
            setattr(total, key, getattr(total, key) + n)
    return total


def merged_metrics(lanes: list[Lane]) -> MetricSet:
    """One metric set for results and checks: the send lane's metrics under their own names,
    the receive lane's ``receive_delay`` likewise, its other metrics prefixed ``inbound.``."""
    out = MetricSet()
    for lane in lanes:
        for name, m in lane.corr.metrics.items():
            inbound = lane.direction == "receive" and name != "receive_delay"
            out[INBOUND + name if inbound else name] = m
    return out


def merged_outcomes(lanes: list[Lane]) -> dict[str, Any]:
    rejected: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    by_class: dict[str, int] = {}
    for lane in lanes:
        d = lane.corr.outcomes.as_dict()
        for item in d["rejected"]:
            rejected.append({**item, "direction": lane.direction})
        for item in d["failed"]:
            failed.append({**item, "direction": lane.direction})
        for k, n in d["by_class"].items():
            by_class[k] = by_class.get(k, 0) + n
    return {"rejected": rejected, "failed": failed, "by_class": by_class}


def directions_doc(lanes: list[Lane]) -> dict[str, Any]:
    """Per-lane counts and whether each lane's books balance."""
    return {
        lane.direction: {
            "counts": lane.corr.counts.as_dict(),
            "identity_holds": lane.corr.counts.identity_holds,
            "target": f"{lane.host}:{lane.port}" if lane.host else None,
        }
        for lane in lanes
    }
