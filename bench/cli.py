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
from bench.scenario import Scenario, ScenarioError, load
from bench.scenario import _address as parse_address
from fakemta.delays import parse_delay

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
def run(
    scenario: str, overrides: tuple[str, ...], out: Path | None, no_live: bool, as_json: bool
) -> None:
    """Run a scenario, show it live, write result.json and exit with the verdict."""
    from bench.live import LineView, LiveView
    from bench.report import print_report
    from bench.runner import Runner

    sc = _load(scenario, overrides)
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
    from bench.results import RunResult

    assert isinstance(result, RunResult)
    if as_json:
        click.echo(json.dumps(result.doc, indent=2))
    else:
        print_report(console, result)
    if result.status != "completed":
        Console(stderr=True, highlight=False).print(
            f"[bold yellow]mailsla:[/] run {result.status}: {result.reason}", soft_wrap=True
        )
    sys.exit(result.exit_code)


def _addr(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    try:
        return parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    callback=_addr,
    help="Submission address (port 0: any free port).",
)
@click.option(
    "--relay-to", required=True, callback=_addr, help="The destination post office, host:port."
)
@click.option(
    "--relay-domain",
    "domains",
    multiple=True,
    default=("remote.test",),
    show_default=True,
    help="Domain(s) relayed to the post office.",
)
@click.option(
    "--processing-delay",
    default="uniform(5ms, 50ms)",
    show_default=True,
    help="Delay distribution each message is held for.",
)
@click.option(
    "--workers",
    default=8,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Delivery workers (persistent connections to the post office).",
)
@click.option("--hostname", default="mta.local.test", show_default=True)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--local-domain",
    default="local.test",
    show_default=True,
    help="The domain delivered locally (with --mailbox-root).",
)
@click.option(
    "--users",
    "n_users",
    default=0,
    show_default=True,
    type=click.IntRange(0, 10_000_000),
    help="Local mailbox users: user0 .. userN-1.",
)
@click.option(
    "--mailbox-root",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Deliver local-domain mail into Maildirs DIR/<user>/ (no local delivery without it).",
)
@click.option(
    "--delivery-delay",
    default="const(0ms)",
    show_default=True,
    help="Delay distribution before local delivery.",
)
@click.option(
    "--inbound",
    default=None,
    metavar="HOST:PORT",
    help="Inbound (MX) address for local mail from other post offices "
    "(with --mailbox-root; default 127.0.0.1:0).",
)
@click.option(
    "--tls/--no-tls",
    default=False,
    show_default=True,
    help="Offer STARTTLS (with a self-signed certificate unless --tls-cert).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Certificate chain (PEM) for STARTTLS; implies --tls.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Its private key (default: in the --tls-cert file).",
)
@click.option("--tls-required", is_flag=True, help="Refuse MAIL before STARTTLS (530).")
@click.option(
    "--auth",
    "auth",
    multiple=True,
    metavar="USER:PASSWORD",
    help="A user who may AUTH PLAIN/LOGIN (repeatable; only after STARTTLS with --tls).",
)
@click.option("--auth-required", is_flag=True, help="Refuse MAIL before AUTH (530).")
def fakemta(
    listen: tuple[str, int],
    relay_to: tuple[str, int],
    domains: tuple[str, ...],
    processing_delay: str,
    workers: int,
    hostname: str,
    seed: int,
    local_domain: str,
    n_users: int,
    mailbox_root: str | None,
    delivery_delay: str,
    inbound: str | None,
    tls: bool,
    tls_cert: str | None,
    tls_key: str | None,
    tls_required: bool,
    auth: tuple[str, ...],
    auth_required: bool,
) -> None:
    """Run the embedded fake mail system on its own, until Ctrl-C."""
    from fakemta.process import serve
    from fakemta.server import FakeMtaConfig, ReadyInfo, StartError

    try:
        delay = parse_delay(processing_delay)
    except ValueError as exc:
        abort(f"--processing-delay: {exc}", EXIT_USAGE)
    try:
        local_delay = parse_delay(delivery_delay)
    except ValueError as exc:
        abort(f"--delivery-delay: {exc}", EXIT_USAGE)
    if mailbox_root is None and (n_users or inbound is not None):
        abort("--users and --inbound need --mailbox-root (local delivery)", EXIT_USAGE)
    try:
        inbound_at = parse_address(inbound or "127.0.0.1:0")
    except ValueError as exc:
        abort(f"--inbound: {exc}", EXIT_USAGE)
    tls = tls or tls_cert is not None
    if tls_required and not tls:
        abort("--tls-required needs --tls", EXIT_USAGE)
    if tls_key is not None and tls_cert is None:
        abort("--tls-key needs --tls-cert", EXIT_USAGE)
    users: list[tuple[str, str]] = []
    for pair in auth:
        user, colon, password = pair.partition(":")
        if not user or not colon:
            abort(f"--auth: {pair!r} is not USER:PASSWORD", EXIT_USAGE)
        users.append((user, password))
    if auth_required and not users:
        abort("--auth-required needs at least one --auth USER:PASSWORD", EXIT_USAGE)
    config = FakeMtaConfig(
        relay_host=relay_to[0],
        relay_port=relay_to[1],
        listen_host=listen[0],
        listen_port=listen[1],
        hostname=hostname,
        relay_domains=domains,
        processing_delay=delay,
        delivery_workers=workers,
        seed=seed,
        local_domain=local_domain,
        local_users=tuple(f"user{i}" for i in range(n_users)),
        mailbox_root=mailbox_root,
        delivery_delay=local_delay,
        inbound_host=inbound_at[0],
        inbound_port=inbound_at[1],
        tls=tls,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_required=tls_required,
        auth_users=tuple(users),
        auth_required=auth_required,
    )

    def ready(info: ReadyInfo) -> None:
        port, q, cert = info["port"], info["inbound_port"], info["cert_file"]
        inbound_addr = f"{inbound_at[0]}:{q}" if q is not None else None
        click.echo(
            f"fakemta: submission {listen[0]}:{port}, relaying "
            f"{', '.join(domains)} to {relay_to[0]}:{relay_to[1]}, "
            f"processing delay {delay}",
        )
        if inbound_addr is not None:
            click.echo(
                f"fakemta: local domain {local_domain} ({n_users} users) into Maildirs under "
                f"{mailbox_root}, delivery delay {local_delay}, inbound {inbound_addr}"
            )
        if tls:
            required = ", required" if tls_required else ""
            click.echo(f"fakemta: STARTTLS{required}, certificate {cert}")
        if users:
            click.echo(
                f"fakemta: AUTH PLAIN LOGIN, {len(users)} user(s)"
                + (", required" if auth_required else "")
            )
        click.echo(
            json.dumps(
                {
                    "submit": f"{listen[0]}:{port}",
                    "relay_to": f"{relay_to[0]}:{relay_to[1]}",
                    "inbound": inbound_addr,
                    "cert_file": cert,
                }
            )
        )
        sys.stdout.flush()

    try:
        stats = uvloop.run(serve(config, ready))
    except ValueError as exc:
        abort(f"fakemta: {exc}", EXIT_USAGE)
    except StartError as exc:
        abort(f"fakemta {exc}", EXIT_RUN)
    click.echo(f"fakemta: stopped; {json.dumps(stats)}")


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
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to save the table as JSON (default results/selftest-<UTC time>.json).",
)
def selftest(rounds: int, quick: bool, memory_messages: int | None, out: Path | None) -> None:
    """Measure mailsla's own speed and memory against smtp-source, smtp-sink and Postfix."""
    from bench.anchors import SelftestError
    from bench.selftest import run_selftest
    from bench.selftest_report import print_table, save

    err = Console(stderr=True, highlight=False)
    n_mem = memory_messages or (100_000 if quick else 1_000_000)
    try:
        figs = uvloop.run(run_selftest(rounds, quick, err.print, n_mem))
    except SelftestError as exc:
        abort(str(exc), EXIT_RUN)
    print_table(Console(highlight=False, width=None if sys.stdout.isatty() else 160), figs)
    path = save(figs, out, rounds=rounds, quick=quick)
    click.echo(f"saved: {path}")
