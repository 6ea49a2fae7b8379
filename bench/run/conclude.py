"""The end of a run: judge the books against the SLA and write result.json.

:func:`conclude` reads a finished :class:`bench.run.runner.Runner` (its lanes' books, the
availability windows, the interval series, the fake MTA's statistics) and writes the result
document atomically, whatever the run's status, then gives the exit code it earns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bench.run.lanes import directions_doc, merged_metrics, merged_outcomes, total_counts
from bench.run.results import IDENTITY, SCHEMA, RunResult, versions, write_json_atomic
from bench.verdict.abort import mark_aborted
from bench.verdict.sla import evaluate

if TYPE_CHECKING:
    from bench.run.runner import Runner


def conclude(run: Runner) -> RunResult:
    """Judge *run* and write its result.json; exit code 0 passed, 1 failed, 3 not judged."""
    sc = run.sc
    counts = total_counts(run.lanes)
    metrics = merged_metrics(run.lanes)
    undelivered = {lane.direction: lane.corr.counts.undelivered for lane in run.lanes}
    avail = run.availability.summary(lost=counts.undelivered) if run.availability else None
    series = run.series
    verdict = evaluate(
        sc.sla.profile,
        sc.sla.thresholds,
        metrics,
        undelivered,
        sc.directions,
        availability=avail,
        windows=series.windows_for(sc.sla.thresholds) if series is not None else None,
    )
    if run.trip is not None:
        verdict = mark_aborted(verdict, sc.sla.thresholds, run.trip)
    holds = all(lane.corr.counts.identity_holds for lane in run.lanes)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "run": {
            "id": run.run_id,
            "scenario": sc.as_run(),
            "scenario_file": run.source,
            "overrides": list(run.overrides),
            "seed": sc.seed,
            "started_at": run.started.isoformat(),
            "ended_at": datetime.now(UTC).isoformat(),
            "status": run.status,
            "reason": run.reason,
            "system": run.system_info,
            "versions": versions(),
        },
        "counts": counts.as_dict(),
        "accounting": {"identity": IDENTITY, "holds": holds and counts.identity_holds},
        "directions": directions_doc(run.lanes),
        "outcomes": merged_outcomes(run.lanes),
        "metrics": metrics.summaries(),
        "sla": verdict.as_dict(),
    }
    if avail is not None:
        doc["availability"] = avail
    if run.refusals is not None:
        doc["postoffice"] = {
            "deferred": run.refusals.deferred,
            "refused": run.refusals.refused,
        }
    if run.mailboxes is not None:
        doc["receive"] = run.mailboxes.info()
    if run.traceback:
        doc["run"]["traceback"] = run.traceback
    if run.trip is not None:
        doc["run"]["aborted_by"] = run.trip.threshold.text
    if run.fakemta_stats is not None:
        doc["fakemta"] = run.fakemta_stats
    path = run.out_dir / "result.json"
    write_json_atomic(path, doc)
    # A run stopped by an abort_on_fail threshold is judged (1), not lost (3).
    tripped = run.status == "aborted" and run.trip is not None
    judged = run.status == "completed" or tripped
    code = (0 if verdict.passed else 1) if judged else 3
    return RunResult(doc, path, verdict, run.status, run.reason, code)
