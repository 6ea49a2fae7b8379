"""The ``mailsla`` command. The only module that prints and exits.

Exit codes: 0 every SLA check and threshold passed; 1 one failed; 2 bad usage or scenario;
3 the run could not be carried out or was interrupted (results are still written).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import NoReturn

import click
import uvloop
from rich.console import Console

from bench import __version__
from bench.config.fieldtypes import parse_address
from bench.config.scenario import Scenario, ScenarioError, load

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_RUN = 0, 1, 2, 3


def abort(lines: list[str] | str, code: int) -> NoReturn:
    """Print an error (first line says what, the rest details) to stderr and exit."""
    err = Console(stderr=True, highlight=False)
    for i, line in enumerate([lines] if isinstance(lines, str) else lines):
        err.print(f"[bold red]error:[/] {line}" if i == 0 else f"       {line}", soft_wrap=True)
    sys.exit(code)


def _load(path: str, overrides: tuple[str, ...]) -> Scenario:
    try:
        return load(path, list(overrides))
    except ScenarioError as exc:
        abort(exc.lines(), EXIT_USAGE)


SET_OPTION = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a scenario key (dotted path; VALUE is TOML, else a string).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mailsla")
def main() -> None:
    """Load-test a mail system with real SMTP and judge it against an email-hosting SLA."""


@main.command()
@click.argument("scenario", metavar="SCENARIO.toml")
@SET_OPTION
def validate(scenario: str, overrides: tuple[str, ...]) -> None:
    """Check a scenario file without running it."""
    sc = _load(scenario, overrides)
    load_ = sc.load
    what = (
        f"{load_.model}, {load_.rate:g}/s"
        if load_.model in ("constant", "poisson")
        else load_.model
    )
    click.echo(f"ok: {scenario}: scenario {sc.name!r} ({what}, system {sc.system.kind})")


@main.command()
@click.argument("scenario", metavar="SCENARIO.toml")
@SET_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write result.json (default results/<UTC time>-<name>/).",
)
@click.option("--no-live", is_flag=True, help="No live view (also off when stdout is no TTY).")
@click.option("--json", "as_json", is_flag=True, help="Print result.json to stdout at the end.")
@click.option(
    "--baseline",
    type=click.Path(path_type=Path),
    help="Compare with this result.json (or run folder): a regression fails the run.",
)
@click.option(
    "--tolerance",
    "tolerances",
    multiple=True,
    metavar="METRIC.STAT=VALUE",
    help="With --baseline: allowed worsening, e.g. send_delay.p99=30% or =5ms.",
)
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here."
)
def run(
    scenario: str,
    overrides: tuple[str, ...],
    out: Path | None,
    no_live: bool,
    as_json: bool,
    baseline: Path | None,
    tolerances: tuple[str, ...],
    junit: Path | None,
) -> None:
    """Run a scenario, show it live, write result.json and exit with the verdict."""
    from bench.cli.compare import finish, prepare
    from bench.report.live import LineView, LiveView
    from bench.report.terminal import print_report
    from bench.run.runner import Runner

    sc = _load(scenario, overrides)
    try:
        gate_opts = prepare(baseline, tolerances, junit)
    except ValueError as exc:
        abort(str(exc), EXIT_USAGE)
    try:
        credentials = sc.credentials(os.environ)
        imap_password = sc.imap_password(os.environ)
    except ValueError as exc:
        abort(f"{scenario}: {exc}", EXIT_USAGE)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 110)
    live = not no_live and not as_json and sys.stdout.isatty()
    view: LiveView | LineView = LiveView(console, f"mailsla {sc.name}") if live else LineView()
    runner = Runner(
        sc,
        out,
        view,
        source=scenario,
        overrides=overrides,
        credentials=credentials,
        imap_password=imap_password,
    )

    async def go() -> object:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, runner.interrupt)
        loop.add_signal_handler(signal.SIGTERM, runner.interrupt)
        return await runner.run()

    try:
        result = uvloop.run(go())
    except OSError as exc:
        view.close()
        abort(f"cannot write results: {exc}", EXIT_RUN)
    finally:
        view.close()
    from bench.run.results import RunResult

    assert isinstance(result, RunResult)
    report_line = _html_report(result.path.parent)
    if as_json:
        click.echo(json.dumps(result.doc, indent=2))
    else:
        print_report(console, result)
    Console(stderr=True, highlight=False).print(report_line, soft_wrap=True)
    if result.status != "completed":
        Console(stderr=True, highlight=False).print(
            f"[bold yellow]mailsla:[/] run {result.status}: {result.reason}", soft_wrap=True
        )
    sys.exit(finish(console, result, gate_opts, as_json=as_json))


def _html_report(run_dir: Path) -> str:
    """Write report.html beside result.json; the line to print. The page is an extra: a
    failure to draw it is reported, and costs the run neither its results nor its verdict."""
    from bench.report.html import write_report

    try:
        return f"report: {write_report(run_dir)}"
    except Exception as exc:  # any failure of an extra, reported in one line
        return f"[bold yellow]mailsla:[/] report.html not written: {type(exc).__name__}: {exc}"


@main.command()
@click.option(
    "--rounds",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="A/B rounds per figure (medians are compared).",
)
@click.option("--quick", is_flag=True, help="Smaller loads (a rough look in about a minute).")
@click.option(
    "--memory-messages",
    type=click.IntRange(1000, 10_000_000),
    default=None,
    help="Messages in the memory run (default 1,000,000; 100,000 with --quick).",
)
@click.option(
    "--fast-paths",
    is_flag=True,
    help="Instead: each of mailsla's own fast paths against the library it replaced "
    "(aiosmtplib, aiosmtpd, hdrh), about 75 seconds.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to save the table as JSON (default results/selftest-<UTC time>.json, "
    "or results/fastpaths-<UTC time>.json).",
)
def selftest(
    rounds: int, quick: bool, memory_messages: int | None, fast_paths: bool, out: Path | None
) -> None:
    """Measure mailsla's own speed and memory against smtp-source, smtp-sink and Postfix."""
    from bench.selftest.anchors import SelftestError
    from bench.selftest.fastpaths import run_fast_paths
    from bench.selftest.suite import run_selftest
    from bench.selftest.table import print_table, save

    if fast_paths and memory_messages is not None:
        abort(
            "selftest: --memory-messages is for the memory run, which --fast-paths skips",
            EXIT_USAGE,
        )
    err = Console(stderr=True, highlight=False)
    n_mem = memory_messages or (100_000 if quick else 1_000_000)
    try:
        if fast_paths:
            figs = uvloop.run(run_fast_paths(rounds, quick, err.print))
        else:
            figs = uvloop.run(run_selftest(rounds, quick, err.print, n_mem))
    except SelftestError as exc:
        abort(str(exc), EXIT_RUN)
    print_table(Console(highlight=False, width=None if sys.stdout.isatty() else 160), figs)
    kind = "fastpaths" if fast_paths else "selftest"
    path = save(figs, out, rounds=rounds, quick=quick, kind=kind)
    click.echo(f"saved: {path}")


def address_param(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    """A click callback: *value* as (host, port), or a usage error naming the option."""
    try:
        return parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _register() -> None:
    from bench.cli.compare import compare_cmd
    from bench.cli.fakemta import fakemta
    from bench.cli.postfix import postfix
    from bench.cli.report import report

    main.add_command(fakemta)
    main.add_command(postfix)
    main.add_command(compare_cmd)
    main.add_command(report)


_register()
