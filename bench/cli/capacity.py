"""``mailsla capacity SCENARIO``: search the highest open-loop rate the system carries within
the SLA and keeping up (issue 16); capacity.json and capacity.html in ``--out``."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import uvloop
from rich.console import Console

from bench.cli.options import SET_OPTION, load_scenario
from bench.errors import ExitCode, RunError, UsageError


@click.command()
@click.argument("scenario", metavar="SCENARIO.toml")
@SET_OPTION
@click.option("--budget", metavar="D", help='capacity.budget: the whole search (e.g. "10m").')
@click.option("--start-rate", metavar="N", help="capacity.start_rate: the first rate (msgs/s).")
@click.option("--precision", metavar="P", help="capacity.precision: e.g. 0.05 for 5 %.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write capacity.json and the steps "
    "(default results/<UTC time>-<name>-capacity/).",
)
@click.option("--json", "as_json", is_flag=True, help="Print capacity.json to stdout at the end.")
def capacity(
    scenario: str,
    overrides: tuple[str, ...],
    budget: str | None,
    start_rate: str | None,
    precision: str | None,
    out: Path | None,
    as_json: bool,
) -> ExitCode:
    """Find the highest rate the system carries within the SLA, keeping up, and confirm it."""
    from bench.capacity.driver import Driver
    from bench.report.capacity import StepLines, print_capacity, write_html
    from bench.run.results import check_writable

    extra = []
    if budget is not None:
        extra.append(f"capacity.budget={json.dumps(budget)}")
    if start_rate is not None:
        extra.append(f"capacity.start_rate={start_rate}")
    if precision is not None:
        extra.append(f"capacity.precision={precision}")
    overrides = (*overrides, *extra)
    sc = load_scenario(scenario, overrides)
    if "receive" in sc.directions:
        raise UsageError(f"{scenario}: load.direction: the capacity search drives outbound mail")
    try:
        credentials = sc.credentials(os.environ)
        imap_password = sc.imap_password(os.environ)
    except UsageError as exc:
        raise UsageError(f"{scenario}: {exc}") from None
    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = Path("results") / f"{stamp}-{sc.name}-capacity"
    check_writable(out)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    view = StepLines(Console(stderr=True, highlight=False) if as_json else console)
    driver = Driver(
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
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, driver.interrupt, sig.name)
        return await driver.run()

    try:
        outcome = uvloop.run(go())
    except OSError as exc:
        raise RunError(f"cannot write results: {exc}") from None
    from bench.capacity.driver import Outcome

    assert isinstance(outcome, Outcome)
    try:
        html = f"report: {write_html(out, outcome.doc)}"
    except Exception as exc:  # an extra: reported, costing the search nothing
        html = f"capacity.html not written: {type(exc).__name__}: {exc}"
    if as_json:
        click.echo(json.dumps(outcome.doc, indent=2))
    else:
        print_capacity(console, outcome.doc)
        console.print(f"capacity: {outcome.path}", highlight=False, soft_wrap=True)
    Console(stderr=True, highlight=False).print(html, soft_wrap=True)
    if outcome.exit_code == ExitCode.RUN:
        raise RunError(
            f"capacity search stopped: {outcome.doc['reason']}",
            f"capacity.json (best rate proven so far) in {out}",
        )
    return outcome.exit_code
