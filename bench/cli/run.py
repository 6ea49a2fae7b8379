"""``mailsla run SCENARIO``: run a scenario, show it live, write result.json, and end with the
verdict's exit code."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import click
import uvloop
from rich.console import Console

from bench.cli.compare import ALLOW_DIFFERENT_OPTION
from bench.cli.handler import print_error
from bench.cli.options import SET_OPTION, load_scenario
from bench.errors import ExitCode, RunError, UsageError


@click.command()
@click.argument("scenario", metavar="SCENARIO.toml")
@SET_OPTION
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write result.json (default results/<UTC time>-<name>/).",
)
@click.option("--rate", metavar="N", help="Shorthand for --set load.rate=N (messages a second).")
@click.option(
    "--duration", metavar="D", help='Shorthand for --set load.duration="D" (e.g. 30s, 5m).'
)
@click.option("--sessions", metavar="N", help="Shorthand for --set load.sessions=N.")
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
@ALLOW_DIFFERENT_OPTION
@click.option(
    "--junit", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML here."
)
@click.option(
    "--ray",
    "ray_address",
    metavar="ADDRESS",
    help="Send from Ray actors on the cluster at ADDRESS (host:port of its head, or auto: the "
    "one running here); load.workers actors, auto: one per CPU. Needs mailsla[ray].",
)
@click.option(
    "--ray-postoffice",
    "ray_postoffice",
    metavar="WHERE",
    help="With --ray: where the post office runs: driver (here, the default), each (every "
    "node), or one node's address or id; postoffice.workers actors on each.",
)
@click.option(
    "--ray-watcher",
    "ray_watcher",
    metavar="WHERE",
    help="With --ray and inbound mail: where the Maildir watcher runs: driver (here, the "
    "default), or the address or id of the node that holds the Maildirs.",
)
def run(
    scenario: str,
    overrides: tuple[str, ...],
    out: Path | None,
    rate: str | None,
    duration: str | None,
    sessions: str | None,
    no_live: bool,
    as_json: bool,
    baseline: Path | None,
    tolerances: tuple[str, ...],
    allow_different: bool,
    junit: Path | None,
    ray_address: str | None,
    ray_postoffice: str | None,
    ray_watcher: str | None,
) -> ExitCode:
    """Run a scenario, show it live, write result.json and exit with the verdict."""
    from bench.cli.compare import finish, prepare
    from bench.report.live import LineView, LiveView
    from bench.report.terminal import print_report
    from bench.run.results import check_writable, point_latest
    from bench.run.runner import Runner

    overrides = (*overrides, *shorthands(rate=rate, duration=duration, sessions=sessions))
    sc = load_scenario(scenario, overrides)
    gate_opts = prepare(
        baseline,
        tolerances,
        junit,
        allow_different=allow_different,
        scenario=sc,
        source=scenario,
    )
    try:
        credentials = sc.credentials(os.environ)
        imap_password = sc.imap_password(os.environ)
    except UsageError as exc:
        raise UsageError(f"{scenario}: {exc}") from None
    for flag, given in (("--ray-postoffice", ray_postoffice), ("--ray-watcher", ray_watcher)):
        if given is not None and not ray_address:
            raise UsageError(f"{flag}: add --ray ADDRESS (the cluster it runs on)")
    ray = None
    if ray_address:
        ray = _ray_plan(ray_address, sc, ray_postoffice or "driver", ray_watcher or "driver")
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
        ray=ray,
    )
    check_writable(runner.out_dir)  # before the run, not after it

    async def go() -> object:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.interrupt, sig.name)
        return await runner.run()

    try:
        result = uvloop.run(go())
    except OSError as exc:
        view.close()
        raise RunError(f"cannot write results: {exc}") from None
    finally:
        view.close()
    from bench.run.results import RunResult

    assert isinstance(result, RunResult)
    if out is None:
        point_latest(result.path.parent)  # results/latest: the newest run
    report_line = _html_report(result.path.parent)
    if as_json:
        click.echo(json.dumps(result.doc, indent=2))
    else:
        print_report(console, result)
    Console(stderr=True, highlight=False).print(report_line, soft_wrap=True)
    if result.status != "completed":
        print_error(f"run {result.status}: {result.reason}", word="mailsla", style="bold yellow")
    return finish(console, result, gate_opts, as_json=as_json)


def _ray_plan(address: str, sc: Any, postoffice: str, watcher: str) -> Any:
    """Join the Ray cluster at *address* and place the generator actors on its nodes, the
    post office where *postoffice* says, and the Maildir watcher where *watcher* says (exit
    2, saying how to get Ray, when it is not installed; naming the nodes when either names
    none of them)."""
    from bench.procs.ray_connect import connect
    from bench.procs.ray_fleet import RayPlan
    from bench.procs.ray_postoffice import postoffice_nodes
    from bench.procs.ray_watcher import check_watcher, watcher_node
    from bench.run.wiring import ray_placement

    check_watcher(sc, watcher)
    nodes = connect(address)
    placement = ray_placement(nodes, sc.load.workers, sc.load.sessions)
    return RayPlan(
        address,
        placement,
        postoffice_where=postoffice,
        postoffice=postoffice_nodes(nodes, postoffice),
        watcher_where=watcher,
        watcher=watcher_node(nodes, watcher),
    )


def shorthands(*, rate: str | None, duration: str | None, sessions: str | None) -> list[str]:
    """``--rate``, ``--duration`` and ``--sessions`` as the ``--set`` overrides they stand
    for (validated like any other: a bad value names ``load.rate`` and why)."""
    out = []
    if rate is not None:
        out.append(f"load.rate={rate}")
    if duration is not None:
        out.append(f"load.duration={json.dumps(duration)}")
    if sessions is not None:
        out.append(f"load.sessions={sessions}")
    return out


def _html_report(run_dir: Path) -> str:
    """Write report.html beside result.json; the line to print. The page is an extra: a
    failure to draw it is reported, and costs the run neither its results nor its verdict."""
    from bench.report.html import write_report

    try:
        return f"report: {write_report(run_dir)}"
    except Exception as exc:  # any failure of an extra, reported in one line
        return f"[bold yellow]mailsla:[/] report.html not written: {type(exc).__name__}: {exc}"
