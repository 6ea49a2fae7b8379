"""``mailsla report RUN``: rebuild a finished run's report.html and print its tables (RUN: the
run's folder or its result.json)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from bench.errors import ExitCode, RunError, UsageError
from bench.run.results import SCHEMA, RunResult
from bench.verdict.sla import Check, Verdict

# What the report reads of a result document, and the type each must have.
SECTIONS: dict[str, type] = {
    "schema": str,
    "run": dict,
    "counts": dict,
    "accounting": dict,
    "metrics": dict,
    "sla": dict,
}
CHECK_KEYS = ("name", "op", "limit", "observed", "pass", "source")


def result_path(run: Path) -> Path:
    """result.json of a run: *run* itself, or the file in the folder *run*."""
    return run / "result.json" if run.is_dir() else run


def read_result(path: Path) -> dict[str, Any]:
    """The result document at *path*, checked for what the report reads: a
    :class:`UsageError` naming the file and the first thing missing otherwise."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{path}: no result.json there (is it a mailsla results folder?)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: not JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: not a mailsla result (a JSON object is expected)")
    for key, kind in SECTIONS.items():
        if not isinstance(doc.get(key), kind):
            raise UsageError(f"{path}: not a mailsla result: no {kind.__name__} {key!r}")
    if doc["schema"] != SCHEMA:
        raise UsageError(f"{path}: schema {doc['schema']!r}, not {SCHEMA!r}")
    checks = doc["sla"].get("checks")
    if not isinstance(checks, list) or not isinstance(doc["sla"].get("verdict"), str):
        raise UsageError(f"{path}: not a mailsla result: sla needs a verdict and checks")
    for i, c in enumerate(checks):
        missing = [k for k in CHECK_KEYS if not isinstance(c, dict) or k not in c]
        if missing:
            raise UsageError(f"{path}: sla.checks[{i}]: no {', '.join(missing)}")
    return doc


def load_result(run: Path) -> RunResult:
    """The :class:`RunResult` of a finished run (its folder or its result.json), read back;
    the exit code is the one the run ended with."""
    path = result_path(run)
    doc = read_result(path)
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
                state=c.get("state", ""),
                needed=c.get("needed"),
            )
            for c in doc["sla"]["checks"]
        )
    )
    run_doc = doc["run"]
    status = run_doc.get("status", "completed")
    code = ExitCode.of_run(completed=status == "completed", passed=verdict.passed)
    return RunResult(doc, path, verdict, status, run_doc.get("reason"), code)


@click.command()
@click.argument("run", metavar="RUN", type=click.Path(exists=True, path_type=Path))
def report(run: Path) -> None:
    """Rebuild a finished run's report.html from its result.json (and timeseries.csv) and print
    its tables. RUN: the run's folder, or its result.json."""
    from bench.report.html import write_report
    from bench.report.terminal import print_report

    result = load_result(run)
    run_dir = result.path.parent
    try:
        html = write_report(run_dir)
    except OSError as exc:
        raise RunError(f"cannot write {run_dir / 'report.html'}: {exc}") from None
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    print_report(console, result)
    click.echo(f"report: {html}")
