"""``mailsla compare BASELINE CURRENT`` and the run command's ``--baseline`` gate.

Exit codes of ``compare``: 0 no stat regressed; 1 at least one REGRESSED; 2 a file cannot be
read or is not a result, or a ``--tolerance`` cannot be parsed (one line on stderr).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.text import Text

from bench.cli.handler import print_error, print_warning
from bench.errors import ExitCode, UsageError
from bench.report.deltas import delta_table
from bench.run.results import RunResult
from bench.verdict.compare import (
    CompareError,
    Row,
    ToleranceError,
    Tolerances,
    check_doc,
    compare,
    parse_tolerances,
    regressed,
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


def gate(
    run_doc: dict[str, Any], baseline_path: Path, tolerances: Tolerances | Sequence[str] = ()
) -> tuple[list[Row], bool]:
    """Compare a finished run with the baseline at *baseline_path*: the rows, and whether any
    regressed. Raises :class:`CompareError` or :class:`ToleranceError` (both usage errors)."""
    tols = _tolerances(tolerances)
    rows = compare(load_result(baseline_path), run_doc, tols)
    return rows, bool(regressed(rows))


@dataclass(frozen=True, slots=True)
class GateOptions:
    """What ``mailsla run`` was asked to do after the run: compare, write JUnit XML."""

    baseline: Path | None
    tolerances: Tolerances
    junit: Path | None


def prepare(baseline: Path | None, tolerances: Sequence[str], junit: Path | None) -> GateOptions:
    """Check the run command's gate options before the run (errors: usage errors, one line)."""
    if tolerances and baseline is None:
        raise ToleranceError("--tolerance needs --baseline")
    tols = parse_tolerances(tolerances)
    if baseline is not None:
        load_result(baseline)
    if junit is not None and junit.is_dir():
        raise CompareError(f"--junit {junit}: is a folder (name a file)")
    return GateOptions(baseline, tols, junit)


def finish(console: Console, result: RunResult, opts: GateOptions, *, as_json: bool) -> ExitCode:
    """After the report: compare with the baseline, write JUnit XML and the GitHub step
    summary; the exit code, raised from 0 to 1 on a regression."""
    from bench.report.junit import write_junit
    from bench.report.step_summary import append_summary

    err = Console(stderr=True, highlight=False)
    code = result.exit_code
    rows: list[Row] | None = None
    if opts.baseline is not None:
        try:
            rows, bad = gate(result.doc, opts.baseline, opts.tolerances)
        except UsageError as exc:  # the baseline changed since the start, or is broken
            print_error(f"baseline: {exc}")
            code = code or ExitCode.USAGE
        else:
            (err if as_json else console).print(Text(""), delta_table(rows))
            if bad and code == ExitCode.PASS:
                code = ExitCode.FAIL
    if opts.junit is not None:
        try:
            write_junit(opts.junit, result.doc, rows)
        except OSError as exc:
            print_error(f"cannot write {opts.junit}: {exc}")
            code = code or ExitCode.RUN
    try:
        append_summary(result.doc, rows)
    except OSError as exc:
        print_warning(f"GitHub step summary: {exc}")
    return code


@click.command("compare")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("current", type=click.Path(path_type=Path))
@TOLERANCE_OPTION
@click.option("--all", "show_all", is_flag=True, help="Also show per-stage rows that are ok.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead.")
def compare_cmd(
    baseline: Path, current: Path, tolerances: tuple[str, ...], show_all: bool, as_json: bool
) -> ExitCode:
    """Compare two runs (result.json files or run folders); exit 1 when a stat regressed.

    A stat regressed when CURRENT is worse than BASELINE beyond its tolerance and beyond the
    noise its sample size and HDR precision allow.
    """
    from bench.report.step_summary import append_summary

    tols = parse_tolerances(tolerances)
    base_doc, cur_doc = load_result(baseline), load_result(current)
    rows = compare(base_doc, cur_doc, tols)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
        console.print(delta_table(rows, show_all=show_all))
    try:
        append_summary(cur_doc, rows)
    except OSError as exc:
        print_warning(f"GitHub step summary: {exc}")
    bad = regressed(rows)
    if bad:
        names = ", ".join(r.name for r in bad)
        click.echo(f"REGRESSED: {names}", err=True)
    return ExitCode.FAIL if bad else ExitCode.PASS
