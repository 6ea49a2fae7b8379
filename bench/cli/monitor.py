"""``mailsla monitor SCENARIO``: probe a live mail system until SIGINT/SIGTERM, keeping the month
in SQLite and serving ``/metrics``; ``mailsla monitor status DB``: the month to date."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import click

from bench.cli.options import SET_OPTION
from bench.config.scenario import Scenario, load
from bench.config.thresholds import ThresholdError, parse_threshold
from bench.errors import ExitCode, RunError, UsageError
from bench.monitor.exporter import serve
from bench.monitor.probe import Monitor
from bench.monitor.status import keep_settings, month_to_date
from bench.monitor.store import Store
from bench.report.month import month_html, month_table


class _MonitorGroup(click.Group):
    """``monitor SCENARIO`` starts the monitor; ``monitor status DB`` reads one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_MonitorGroup)
def monitor() -> None:
    """Probe a live mail system endlessly and keep its month-to-date SLA (Prometheus /metrics)."""


def _loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check(sc: Scenario, source: str) -> None:
    if sc.system.kind != "smtp":
        raise UsageError(f'{source}: system.kind: the monitor probes a real system (use "smtp")')
    if "send" in sc.directions and sc.system.submit is None:
        raise UsageError(f"{source}: system.submit: required for send probes (load.direction)")
    mb = sc.mailbox
    if mb.watch == "maildir" and mb.maildir is None:
        raise UsageError(f"{source}: mailbox.maildir: required (the folder of the users' Maildirs)")
    if mb.watch == "imap" and mb.imap is None:
        raise UsageError(f'{source}: mailbox.imap: required when mailbox.watch = "imap"')
    for i, t in enumerate(sc.sla.thresholds):
        if t.window_s is not None:
            n = t.window_s / sc.monitor.window
            if abs(n - round(n)) > 1e-9 or round(n) < 1:
                raise UsageError(
                    f"{source}: sla.thresholds[{i}]: {t.text!r}: the window must be a whole "
                    "number of monitor.window (the SLA minute)"
                )
    listen = sc.monitor.listen
    if listen is not None and not _loopback(listen[0]) and not sc.monitor.allow_remote:
        raise UsageError(
            f"{source}: monitor.listen: {listen[0]} is off loopback; "
            "set monitor.allow_remote = true to serve /metrics there"
        )


@monitor.command("start", hidden=True)
@click.argument("scenario", metavar="SCENARIO.toml")
@SET_OPTION
def start(scenario: str, overrides: tuple[str, ...]) -> None:
    """Run the monitor until SIGINT or SIGTERM."""
    sc = load(scenario, list(overrides), purpose="monitor")
    _check(sc, scenario)
    try:
        credentials = sc.credentials(os.environ)
    except UsageError as exc:
        raise UsageError(f"{scenario}: {exc}") from None
    imap_password = None
    if sc.mailbox.watch == "imap":  # every probe is watched for, whichever its direction
        var = sc.mailbox.imap_password_env
        imap_password = os.environ.get(var)
        if not imap_password:
            raise UsageError(
                f"{scenario}: mailbox.imap_password_env: environment variable {var} is not set "
                "(the IMAP password is read from the environment)"
            )
    m = sc.monitor
    db = Path(m.database)
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        store = Store(db, window_s=m.window)
    except Exception as exc:  # sqlite3.Error and OSError: the file cannot be used
        raise RunError(f"monitor.database: {db}: {exc}") from None
    keep_settings(store, m.timezone, m.boundary_day, sc.sla.profile, sc.sla.thresholds)
    server = None
    if m.listen is not None:
        try:
            server = serve(db, m.listen[0], m.listen[1])
        except OSError as exc:
            raise RunError(f"monitor.listen: {m.listen[0]}:{m.listen[1]}: {exc}") from None
    mon = Monitor(sc, store, credentials=credentials, imap_password=imap_password)
    port = None if server is None else server.server_port
    click.echo(
        json.dumps(
            {
                "database": str(db),
                "run": mon.run,
                "resumed_inflight": len(store.inflight()),
                "metrics": None if port is None else f"http://{m.listen[0]}:{port}/metrics",  # type: ignore[index]
            }
        ),
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, mon.stop.set)
        await mon.run_forever()

    try:
        asyncio.run(main())
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
        store.close()


@monitor.command("status")
@click.argument("db", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the month to date as JSON.")
@click.option("--tz", default=None, help="The month's time zone [default: the monitor's, or UTC].")
@click.option(
    "--boundary-day",
    default=None,
    type=click.IntRange(1, 28),
    help="The day the month starts [default: the monitor's, or 1].",
)
@click.option(
    "--profile", default=None, help="The SLA profile [default: the monitor's, or exmail]."
)
@click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="CHECK",
    help="Judge by these thresholds instead of the monitor's sla.thresholds (repeatable), "
    "e.g. 'send_delay.p99[1h] < 5m'.",
)
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the month to date as an HTML report here.",
)
def status(
    db: Path,
    as_json: bool,
    tz: str | None,
    boundary_day: int | None,
    profile: str | None,
    thresholds: tuple[str, ...],
    html_out: Path | None,
) -> ExitCode:
    """The month to date of a monitor database: each SLA clause and threshold, budget, burn,
    projection. Exits 0 when every check passes month to date, 1 when one fails."""
    from bench.config.names import PROFILES

    if profile is not None and profile not in PROFILES:
        raise UsageError(f"--profile: {profile!r} is not one of {', '.join(PROFILES)}")
    if tz is not None:
        try:
            from zoneinfo import ZoneInfo

            ZoneInfo(tz)
        except (ValueError, KeyError, OSError):
            raise UsageError(f"--tz: unknown time zone {tz!r}") from None
    try:
        parsed = tuple(parse_threshold(t) for t in thresholds) or None
    except ThresholdError as exc:
        raise UsageError(f"--threshold: {exc}") from None
    store = Store(db)
    try:
        st = month_to_date(store, time.time_ns(), tz, boundary_day, profile, parsed)
    finally:
        store.close()
    if html_out is not None:
        html_out.write_text(month_html(st), encoding="utf-8")
    click.echo(json.dumps(st, indent=2) if as_json else month_table(st))
    return ExitCode.PASS if st["verdict"] == "pass" else ExitCode.FAIL
