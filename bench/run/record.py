"""What one run produced, frozen when the run is over: the input of :func:`conclude`.

The runner fills a :class:`RunRecord` once its edges have stopped; nothing reads the runner's
own attributes after that. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from bench.config.scenario import Scenario
from bench.core.availability import Availability
from bench.run.lanes import Lane
from bench.verdict.abort import Trip
from bench.verdict.sla import Window

RunStatus = Literal["completed", "interrupted", "aborted", "error"]


def make_run_id(name: str, now: datetime) -> str:
    """A run's id: its UTC start and the scenario's name (``20261203T061142Z-quickstart``)."""
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + name


@dataclass(frozen=True, slots=True)
class RunRecord:
    """A finished run: its scenario and identity, how it ended, and its books."""

    scenario: Scenario
    run_id: str
    source: str  # the scenario file as given on the command line ("" in-process)
    overrides: tuple[str, ...]
    started: datetime
    ended: datetime
    status: RunStatus
    reason: str | None
    traceback: str | None
    system: Mapping[str, Any]  # what was measured, where: result.json's run.system
    versions: Mapping[str, str]
    lanes: tuple[Lane, ...]
    availability: Availability | None
    windows: Mapping[float, Sequence[Window]] | None  # the windowed thresholds' windows
    trip: Trip | None  # the abort_on_fail threshold that stopped the run
    postoffice: Mapping[str, int] | None  # its on-purpose refusals: deferred, refused
    receive: Mapping[str, Any] | None  # the receive lane's mailboxes
    fakemta: Mapping[str, Any] | None  # the embedded fake MTA's own statistics
    warnings: tuple[str, ...] = ()  # e.g. optional files given up on a full disk
    ray: Mapping[str, Any] | None = None  # a run on Ray: which node ran what, the clocks
