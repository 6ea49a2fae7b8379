"""``mailsla compare BASELINE CURRENT`` and the run command's ``--baseline`` gate.

Two runs are compared only when their scenarios are comparable
(:mod:`bench.verdict.comparable`); else the command refuses, naming both files and every
difference, unless ``--allow-different`` is given, and then a warning lists them.

Exit codes of ``compare``: 0 no stat regressed; 1 at least one REGRESSED; 2 a file cannot be
read or is not a result, the runs are not comparable, or a ``--tolerance`` cannot be parsed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from bench.cli.handler import print_error, print_warning
from bench.config.scenario import Scenario
from bench.errors import ExitCode, UsageError
from bench.report.deltas import delta_table, print_fitted
from bench.run.results import RunResult
from bench.verdict.comparable import Difference, NotComparableError, differences, refusal
from bench.verdict.compare import CompareError, Row, check_doc, compare, regressed
from bench.verdict.tolerance import ToleranceError, Tolerances, parse_tolerances

ALLOW_FLAG = "--allow-different"
ALLOW_DIFFERENT_OPTION = click.option(
    ALLOW_FLAG,
    "allow_different",
    is_flag=True,
    help="Compare runs whose scenarios differ (a warning lists what differs) instead of "
    "refusing with exit 2; counts are compared per second either way.",
)


TOLERANCE_OPTION = click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    metavar="METRIC.STAT=VALUE",
    help="Allowed worsening, e.g. send_delay.p99=30% or send_delay.p99=5ms ('*.p99' for all).",
)


def load_result(path: Path) -> dict[str, Any]:
    """A result document from a result.json file or a run folder holding one."""
    p = path / "result.json" if path.is_dir() else path
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CompareError(f"{p}: cannot read: {reason}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CompareError(f"{p}: not JSON: {exc.msg} (line {exc.lineno})") from None
    return check_doc(doc, str(p))


def _tolerances(tolerances: Tolerances | Sequence[str]) -> Tolerances:
    return tolerances if isinstance(tolerances, Tolerances) else parse_tolerances(tolerances)


def comparable(
    baseline: Mapping[str, Any],
    current: Mapping[str, Any],
    labels: tuple[object, object],
    *,
    allow_different: bool,
    hint: str = f"(compare them anyway with {ALLOW_FLAG})",
) -> list[Difference]:
    """What differs between the two runs' scenarios; raises :class:`NotComparableError`
    (naming both *labels* and every difference) when something does and it is not allowed."""
    diffs = differences(baseline, current)
    if diffs and not allow_different:
        raise refusal(*labels, diffs, hint=hint)
    return diffs


def warn_different(diffs: Sequence[Difference]) -> None:
    """The warning that the runs compared have scenarios that differ, and how."""
    if diffs:
        head = f"comparing runs of different scenarios ({ALLOW_FLAG}); counts are per second"
        print_error([head, *(d.text for d in diffs)], word="warning", style="bold yellow")


def gate(
    run_doc: dict[str, Any],
    baseline_path: Path,
    tolerances: Tolerances | Sequence[str] = (),
    *,
    allow_different: bool = False,
) -> tuple[list[Row], bool]:
    """Compare a finished run with the baseline at *baseline_path*: the rows, and whether any
    regressed. Raises :class:`CompareError`, :class:`NotComparableError` or
    :class:`ToleranceError` (all usage errors)."""
    tols = _tolerances(tolerances)
    base = load_result(baseline_path)
    comparable(base, run_doc, (baseline_path, "this run"), allow_different=allow_different)
    rows = compare(base, run_doc, tols)
    return rows, bool(regressed(rows))


@dataclass(frozen=True, slots=True)
class GateOptions:
    """What ``mailsla run`` was asked to do after the run: compare, write JUnit XML."""

    baseline: Path | None
    tolerances: Tolerances
    junit: Path | None
    allow_different: bool = False


def prepare(
    baseline: Path | None,
    tolerances: Sequence[str],
    junit: Path | None,
    *,
    allow_different: bool = False,
    scenario: Scenario | None = None,
    source: str = "the scenario",
) -> GateOptions:
    """Check the run command's gate options before the run (errors: usage errors). Given the
    *scenario* (read from *source*), a baseline of another scenario is refused before the run
    rather than after it."""
    if tolerances and baseline is None:
        raise ToleranceError("--tolerance needs --baseline")
    if allow_different and baseline is None:
        raise UsageError(f"{ALLOW_FLAG} needs --baseline")
    tols = parse_tolerances(tolerances)
    if baseline is not None:
        base = load_result(baseline)
        if scenario is not None:
            planned = {"run": {"scenario": scenario.as_run()}}
            comparable(base, planned, (baseline, source), allow_different=allow_different)
    if junit is not None and junit.is_dir():
        raise CompareError(f"--junit {junit}: is a folder (name a file)")
    return GateOptions(baseline, tols, junit, allow_different)


def finish(console: Console, result: RunResult, opts: GateOptions, *, as_json: bool) -> ExitCode:
    """After the report: compare with the baseline, write JUnit XML and the GitHub step
    summary; the exit code, raised from 0 to 1 on a regression, to 2 when the baseline is
    broken or of another scenario (a run that could not be carried out keeps its 3)."""
    from bench.report.junit import write_junit
    from bench.report.step_summary import append_summary

    code = result.exit_code
    rows: list[Row] | None = None
    diffs: list[Difference] = []
    if opts.baseline is not None:
        try:
            base = load_result(opts.baseline)
            diffs = differences(base, result.doc)
            hint = f"(compare anyway: mailsla compare {opts.baseline} {result.path} {ALLOW_FLAG})"
            labels = (opts.baseline, result.path)
            comparable(base, result.doc, labels, allow_different=opts.allow_different, hint=hint)
            rows = compare(base, result.doc, opts.tolerances)
        except NotComparableError as exc:
            print_error(exc.lines())
            code = code if code == ExitCode.RUN else ExitCode.USAGE
        except UsageError as exc:  # the baseline changed since the start, or is broken
            print_error(f"baseline: {exc}")
            code, diffs = code or ExitCode.USAGE, []
        else:
            warn_different(diffs)
            if not as_json:
                console.print()
            print_fitted(delta_table(rows), stderr=as_json, file=None if as_json else console.file)
            if regressed(rows) and code == ExitCode.PASS:
                code = ExitCode.FAIL
    if opts.junit is not None:
        try:
            write_junit(opts.junit, result.doc, rows, diffs)
        except OSError as exc:
            print_error(f"cannot write {opts.junit}: {exc}")
            code = code or ExitCode.RUN
    try:
        append_summary(result.doc, rows, differences=diffs)
    except OSError as exc:
        print_warning(f"GitHub step summary: {exc}")
    return code


@click.command("compare")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("current", type=click.Path(path_type=Path))
@TOLERANCE_OPTION
@ALLOW_DIFFERENT_OPTION
@click.option("--all", "show_all", is_flag=True, help="Also show per-stage rows that are ok.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead.")
def compare_cmd(
    baseline: Path,
    current: Path,
    tolerances: tuple[str, ...],
    allow_different: bool,
    show_all: bool,
    as_json: bool,
) -> ExitCode:
    """Compare two runs (result.json files or run folders); exit 1 when a stat regressed.

    A stat regressed when CURRENT is worse than BASELINE beyond its tolerance and beyond the
    noise its sample size and HDR precision allow. Counts are compared per second of each
    run's sending phase. Runs whose scenarios differ (load, rate, duration, message mix,
    system, delays, faults) are refused with exit 2 unless --allow-different is given.
    """
    from bench.report.step_summary import append_summary

    tols = parse_tolerances(tolerances)
    base_doc, cur_doc = load_result(baseline), load_result(current)
    diffs = comparable(base_doc, cur_doc, (baseline, current), allow_different=allow_different)
    rows = compare(base_doc, cur_doc, tols)
    warn_different(diffs)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        print_fitted(delta_table(rows, show_all=show_all))
    try:
        append_summary(cur_doc, rows, differences=diffs)
    except OSError as exc:
        print_warning(f"GitHub step summary: {exc}")
    bad = regressed(rows)
    if bad:
        names = ", ".join(r.name for r in bad)
        click.echo(f"REGRESSED: {names}", err=True)
    return ExitCode.FAIL if bad else ExitCode.PASS
