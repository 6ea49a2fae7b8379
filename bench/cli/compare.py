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
from rich.table import Table
from rich.text import Text

from bench.report.terminal import fmt_rate, fmt_s
from bench.run.results import RunResult
from bench.verdict.compare import (
    BETTER,
    MISSING,
    NOISE,
    OK,
    REGRESSED,
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
    regressed. Raises :class:`CompareError` or :class:`ToleranceError` (both ValueError)."""
    tols = _tolerances(tolerances)
    rows = compare(load_result(baseline_path), run_doc, tols)
    return rows, bool(regressed(rows))


def fmt_value(row: Row, v: float | None) -> str:
    """A row's value in its unit: a latency, a count or a rate."""
    if v is None:
        return "–"
    if row.kind == "rate":
        return fmt_rate(v)
    return f"{v:.0f}" if row.kind == "count" else fmt_s(v)


def fmt_delta(row: Row) -> tuple[str, str]:
    """The change and the change in %, signed."""
    d = row.delta
    if d is None:
        return "–", "–"
    if row.kind == "rate":
        text = f"{d * 100:+.3f}pp"
    elif row.kind == "count":
        text = f"{d:+.0f}"
    else:
        text = ("+" if d >= 0 else "-") + fmt_s(abs(d))
    pct = row.delta_pct
    return text, "–" if pct is None else f"{pct:+.1f}%"


VERDICT_STYLE = {
    OK: "green",
    BETTER: "bold green",
    NOISE: "yellow",
    REGRESSED: "bold red",
    MISSING: "dim",
}


def _shown(row: Row) -> bool:
    return row.verdict != OK or "stage." not in row.metric


def delta_table(rows: Sequence[Row], *, show_all: bool = False) -> Table:
    """The comparison as a rich table; per-stage rows that are ok only with *show_all*."""
    bad = regressed(rows)
    title = Text.assemble(
        "Baseline comparison: ",
        (f"{len(bad)} REGRESSED", "bold red") if bad else ("no regression", "bold green"),
    )
    t = Table(title=title, title_justify="left", show_edge=False)
    shown = [r for r in rows if show_all or _shown(r)]
    hidden = len(rows) - len(shown)
    t.add_column("metric", no_wrap=True)
    t.add_column("stat", no_wrap=True)
    for col in ("baseline", "current", "delta", "delta %", "tolerance"):
        t.add_column(col, justify="right")
    t.add_column("verdict", no_wrap=True)
    notes = any(r.note for r in shown)
    if notes:
        t.add_column("note", style="dim")
    for r in shown:
        delta, pct = fmt_delta(r)
        t.add_row(
            r.metric,
            r.stat,
            fmt_value(r, r.baseline),
            fmt_value(r, r.current),
            delta,
            pct,
            r.tolerance,
            Text(r.verdict, VERDICT_STYLE.get(r.verdict, "")),
            *([r.note] if notes else []),
        )
    if hidden:
        t.caption = f"{hidden} ok rows of stage.* metrics not shown (--all shows them)"
        t.caption_justify = "left"
    return t


@dataclass(frozen=True, slots=True)
class GateOptions:
    """What ``mailsla run`` was asked to do after the run: compare, write JUnit XML."""

    baseline: Path | None
    tolerances: Tolerances
    junit: Path | None


def prepare(baseline: Path | None, tolerances: Sequence[str], junit: Path | None) -> GateOptions:
    """Check the run command's gate options before the run (errors: ValueError, one line)."""
    if tolerances and baseline is None:
        raise ToleranceError("--tolerance needs --baseline")
    tols = parse_tolerances(tolerances)
    if baseline is not None:
        load_result(baseline)
    if junit is not None and junit.is_dir():
        raise CompareError(f"--junit {junit}: is a folder (name a file)")
    return GateOptions(baseline, tols, junit)


def finish(console: Console, result: RunResult, opts: GateOptions, *, as_json: bool) -> int:
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
        except ValueError as exc:  # the baseline changed since the start, or is broken
            err.print(f"[bold red]error:[/] baseline: {exc}", soft_wrap=True)
            code = code or 2
        else:
            (err if as_json else console).print(Text(""), delta_table(rows))
            if bad and code == 0:
                code = 1
    if opts.junit is not None:
        try:
            write_junit(opts.junit, result.doc, rows)
        except OSError as exc:
            err.print(f"[bold red]error:[/] cannot write {opts.junit}: {exc}", soft_wrap=True)
            code = code or 3
    try:
        append_summary(result.doc, rows)
    except OSError as exc:
        err.print(f"[bold yellow]warning:[/] GitHub step summary: {exc}", soft_wrap=True)
    return code


@click.command("compare")
@click.argument("baseline", type=click.Path(path_type=Path))
@click.argument("current", type=click.Path(path_type=Path))
@TOLERANCE_OPTION
@click.option("--all", "show_all", is_flag=True, help="Also show per-stage rows that are ok.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead.")
def compare_cmd(
    baseline: Path, current: Path, tolerances: tuple[str, ...], show_all: bool, as_json: bool
) -> None:
    """Compare two runs (result.json files or run folders); exit 1 when a stat regressed.

    A stat regressed when CURRENT is worse than BASELINE beyond its tolerance and beyond the
    noise its sample size and HDR precision allow.
    """
    from bench.cli.main import EXIT_FAIL, EXIT_PASS, EXIT_USAGE, abort
    from bench.report.step_summary import append_summary

    try:
        tols = parse_tolerances(tolerances)
        base_doc, cur_doc = load_result(baseline), load_result(current)
        rows = compare(base_doc, cur_doc, tols)
    except ValueError as exc:
        abort(str(exc), EXIT_USAGE)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
        console.print(delta_table(rows, show_all=show_all))
    try:
        append_summary(cur_doc, rows)
    except OSError as exc:
        Console(stderr=True).print(f"warning: GitHub step summary: {exc}", soft_wrap=True)
    bad = regressed(rows)
    if bad:
        names = ", ".join(r.name for r in bad)
        click.echo(f"REGRESSED: {names}", err=True)
    sys.exit(EXIT_FAIL if bad else EXIT_PASS)
