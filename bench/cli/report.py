"""``mailsla report RUN_DIR``: rebuild a finished run's report.html and print its tables."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from bench.errors import ExitCode, RunError, UsageError
from bench.run.results import RunResult
from bench.verdict.sla import Check, Verdict


def load_result(run_dir: Path) -> RunResult:
    """The :class:`RunResult` of a finished run, read back from its result.json; the exit code
    is the one the run ended with."""
    path = run_dir / "result.json"
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    verdict = Verdict(
        tuple(
            Check(
                c["name"],
                c["op"],
                c["limit"],
                c["observed"],
                c["pass"],
                c["source"],
                c.get("note", ""),
            )
            for c in doc["sla"]["checks"]
        )
    )
    run = doc["run"]
    status = run.get("status", "completed")
    code = ExitCode.of_run(completed=status == "completed", passed=verdict.passed)
    return RunResult(doc, path, verdict, status, run.get("reason"), code)


@click.command()
@click.argument(
    "run_dir",
    metavar="RUN_DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
def report(run_dir: Path) -> None:
    """Rebuild RUN_DIR/report.html from result.json (and timeseries.csv) and print the tables."""
    from bench.report.html import write_report
    from bench.report.terminal import print_report

    try:
        result = load_result(run_dir)
    except FileNotFoundError:
        raise UsageError(f"{run_dir}: no result.json (is it a mailsla results folder?)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{run_dir / 'result.json'}: not a mailsla result: {exc!r}") from None
    try:
        html = write_report(run_dir)
    except OSError as exc:
        raise RunError(f"cannot write {run_dir / 'report.html'}: {exc}") from None
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    print_report(console, result)
    click.echo(f"report: {html}")
