"""The end of a run: judge a :class:`~bench.run.record.RunRecord` against the SLA and build
its result document (schema ``mailsla.result/1``). Pure: the runner writes the document.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.core.fates import FateBooks
from bench.core.filters import Rate, rates, summary
from bench.errors import ExitCode
from bench.run.lanes import directions_doc, merged_metrics, merged_outcomes, total_counts
from bench.run.record import RunRecord
from bench.run.results import IDENTITY, SCHEMA
from bench.verdict.abort import mark_aborted
from bench.verdict.sla import Verdict, evaluate


@dataclass(frozen=True, slots=True)
class Conclusion:
    """The result document, the verdict in it, and the exit code the run earns."""

    doc: dict[str, Any]
    verdict: Verdict
    exit_code: ExitCode


def clamped_warnings(metrics: dict[str, dict[str, Any]]) -> list[str]:
    """A line for each metric that had negative intervals (kept as 0, counted in its
    ``negative`` key): its figures are true to the clocks' reading order, not below it."""
    return [
        f"{name}: {m['negative']} of {m['count']} intervals came out negative and are kept as 0 "
        "(one event read after the one that follows it; see the README)"
        for name, m in metrics.items()
        if m.get("negative")
    ]


def merged_fates(rec: RunRecord) -> FateBooks | None:
    """The fate books of every lane in one (None: the run sent no labelled traffic)."""
    books = [lane.corr.fates for lane in rec.lanes if lane.corr.fates is not None]
    if not books:
        return None
    merged = FateBooks(books[0].draw)
    for b in books:
        merged.merge(b)
    return merged


def _filter_rates(rec: RunRecord, books: FateBooks | None) -> dict[str, Rate] | None:
    """The rates of the clauses whose class the mix sends."""
    mix = rec.scenario.message.mix
    if books is None or mix is None:
        return None
    shares = mix.shares()
    return {k: r for k, r in rates(books.by_class()).items() if shares.get(r.cls, 0) > 0}


def conclude(rec: RunRecord) -> Conclusion:
    """Judge *rec*: the SLA checks and thresholds, the accounting, the result document."""
    sc, lanes = rec.scenario, list(rec.lanes)
    counts = total_counts(lanes)
    metrics = merged_metrics(lanes)
    undelivered: dict[str, int] = {lane.direction: lane.corr.counts.undelivered for lane in lanes}
    avail = rec.availability.summary(lost=counts.undelivered) if rec.availability else None
    fates = merged_fates(rec)
    verdict = evaluate(
        sc.sla.profile,
        sc.sla.thresholds,
        metrics,
        undelivered,
        sc.directions,
        availability=avail,
        windows=rec.windows,
        filters=_filter_rates(rec, fates),
    )
    if rec.trip is not None:
        verdict = mark_aborted(verdict, sc.sla.thresholds, rec.trip)
    holds = all(lane.corr.counts.identity_holds for lane in lanes)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "run": {
            "id": rec.run_id,
            "scenario": sc.as_run(),
            "scenario_file": rec.source,
            "overrides": list(rec.overrides),
            "seed": sc.seed,
            "started_at": rec.started.isoformat(),
            "ended_at": rec.ended.isoformat(),
            "status": rec.status,
            "reason": rec.reason,
            "system": dict(rec.system),
            "versions": dict(rec.versions),
        },
        "counts": counts.as_dict(),
        "accounting": {"identity": IDENTITY, "holds": holds and counts.identity_holds},
        "directions": directions_doc(lanes),
        "outcomes": merged_outcomes(lanes),
        "metrics": metrics.summaries(),
        "sla": verdict.as_dict(),
    }
    if avail is not None:
        doc["availability"] = avail
    if fates is not None and sc.message.mix is not None:
        doc["filters"] = summary(fates, sc.message.mix.shares())
    if rec.postoffice is not None:
        doc["postoffice"] = dict(rec.postoffice)
    if rec.receive is not None:
        doc["receive"] = dict(rec.receive)
    if rec.traceback:
        doc["run"]["traceback"] = rec.traceback
    if rec.trip is not None:
        doc["run"]["aborted_by"] = rec.trip.threshold.text
    if rec.fakemta is not None:
        doc["fakemta"] = dict(rec.fakemta)
    if rec.ray is not None:
        doc["run"]["ray"] = dict(rec.ray)
    ray_warnings = rec.ray.get("warnings", []) if rec.ray is not None else []
    warnings = [*rec.warnings, *ray_warnings, *clamped_warnings(doc["metrics"])]
    if warnings:
        doc["run"]["warnings"] = warnings
    # A run stopped by an abort_on_fail threshold is judged (FAIL), not lost (RUN).
    tripped = rec.status == "aborted" and rec.trip is not None
    code = ExitCode.of_run(completed=rec.status == "completed" or tripped, passed=verdict.passed)
    return Conclusion(doc, verdict, code)
