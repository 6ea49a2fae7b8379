"""Lanes of traffic: outbound ("send": users submit, mailsla's post office receives) and inbound
("receive": mailsla acts as a source post office, a watcher sees the mailbox). Pure.

Each lane has its own :class:`Correlator`, so each keeps the accounting identity on its own;
message ids come from one schedule split between the lanes, so they are unique in the run.
This module merges the lanes' books for the live view and the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.config.names import Direction
from bench.config.scenario import Scenario
from bench.core.correlate import Correlator, Counts
from bench.core.metrics import MetricSet

INBOUND = "inbound."  # the receive lane's generator-side metrics: inbound.submit_latency, ...


class LoadSource(Protocol):
    """What sends a lane's traffic: a :class:`bench.load.generator.Generator` in this process,
    or a :class:`bench.procs.parent.GeneratorFleet` of worker processes."""

    abort_reason: str | None

    @property
    def in_flight(self) -> int: ...

    def live_counts(self) -> Mapping[str, int]: ...

    def stop(self, reason: str | None = None) -> None: ...

    def cancel(self) -> None: ...


@dataclass
class Lane:
    direction: Direction
    corr: Correlator
    sessions: int
    host: str = ""
    port: int = 0
    generator: LoadSource | None = field(default=None)

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


def live_totals(lanes: list[Lane]) -> tuple[dict[str, int], int]:
    """The lanes' counts so far, with what their generators' workers have not yet reported
    (their live counts), and how many sends are under way."""
    counts, sending = total_counts(lanes).as_dict(), 0
    for lane in lanes:
        g = lane.generator
        if g is not None:
            for k, v in g.live_counts().items():
                counts[k] += v
            sending += g.in_flight
    return counts, sending


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


def targets_line(lanes: list[Lane]) -> str:
    """Where each lane sends, for the line that announces a run."""
    return ", ".join(
        f"{'submitting to' if lane.direction == 'send' else 'delivering inbound to'} "
        f"{lane.host}:{lane.port}"
        for lane in lanes
    )


def aim(lanes: list[Lane], submit: tuple[str, int], inbound: tuple[str, int]) -> dict[str, str]:
    """Point the send lane at *submit* and the receive lane at *inbound*; where each went, by
    ``submit``/``inbound`` (for result.json's ``run.system``)."""
    where: dict[str, str] = {}
    for lane in lanes:
        send = lane.direction == "send"
        lane.host, lane.port = submit if send else inbound
        where["submit" if send else "inbound"] = f"{lane.host}:{lane.port}"
    return where
