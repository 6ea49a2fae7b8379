"""``mailsla fakemta``: the embedded fake mail system, run in the foreground until Ctrl-C. It
prints where it listens, then one JSON line with the same.

As ``run`` does, it refuses addresses off loopback (where it listens, where it relays) unless
``--allow-remote``. AUTH users come from ``--auth-file`` or ``MAILSLA_FAKEMTA_AUTH`` (one
``USER:PASSWORD`` a line), which ``ps`` does not show; ``--auth`` still works, with a warning.
Its limits (``--*-limit``, ``--idle-timeout``) are Postfix's by default.
"""

from __future__ import annotations

import json
import sys

import click
import uvloop

from bench.cli.fakemta_options import (
    AUTH_ENV,
    auth_users,
    check_local,
    limit_options,
    limits_config,
)
from bench.cli.options import address_param
from bench.config.delays import parse_delay
from bench.config.fieldtypes import parse_address
from bench.errors import RunError, UsageError


@click.command()
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    callback=address_param,
    help="Submission address (port 0: any free port).",
)
@click.option(
    "--relay-to",
    required=True,
    callback=address_param,
    help="The destination post office, host:port.",
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
    "--mailbox-readable",
    is_flag=True,
    help="Write delivered files 0644, not 0600, so an IMAP server running as another user "
    "(Dovecot over --mailbox-root) can read them.",
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
    "--auth-file",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help=f"Users who may AUTH PLAIN/LOGIN, one USER:PASSWORD a line (also {AUTH_ENV}; only "
    "after STARTTLS with --tls).",
)
@click.option(
    "--auth",
    "auth",
    multiple=True,
    metavar="USER:PASSWORD",
    help="A user who may AUTH (repeatable); shows the password in ps: prefer --auth-file.",
)
@click.option("--auth-required", is_flag=True, help="Refuse MAIL before AUTH (530).")
@click.option(
    "--fault",
    "fault_specs",
    multiple=True,
    metavar="STAGE:KIND:PROB[:ARG]",
    help="Inject a fault (repeatable): STAGE connect, banner, ehlo, starttls, auth, rset, noop, "
    "vrfy, quit, mail, rcpt, data, body, dot; KIND 4xx, 5xx, 421, disconnect, stall, delay, "
    "accept_drop (dot only); ARG the reply code (4xx/5xx) or a delay distribution "
    "(stall/delay). Examples: rcpt:4xx:0.1:450, dot:stall:0.01:const(5s).",
)
@click.option(
    "--outage",
    "outage_specs",
    multiple=True,
    metavar="AT:DURATION:KIND",
    help="An outage (repeatable) from AT after start for DURATION; KIND refuse, 421, stall or "
    "blackhole. Example: 30s:10s:refuse.",
)
@click.option(
    "--max-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="N",
    help="Relay at most N messages per second (the queue absorbs the rest).",
)
@click.option(
    "--queue-limit",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    metavar="N",
    help="Hold at most N messages; then 452 4.3.1 after the end of DATA.",
)
@limit_options
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
    mailbox_readable: bool,
    delivery_delay: str,
    inbound: str | None,
    tls: bool,
    tls_cert: str | None,
    tls_key: str | None,
    tls_required: bool,
    auth_file: str | None,
    auth: tuple[str, ...],
    auth_required: bool,
    fault_specs: tuple[str, ...],
    outage_specs: tuple[str, ...],
    max_rate: float | None,
    queue_limit: int,
    queue_bytes_limit: str,
    recipient_limit: int,
    line_length_limit: int,
    message_size_limit: str,
    error_limit: int,
    idle_timeout: str,
    allow_remote: bool,
) -> None:
    """Run the embedded fake mail system on its own, until Ctrl-C."""
    from bench.config.faults import check_faults, check_outages, parse_fault, parse_outage
    from fakemta.process import serve
    from fakemta.server import FakeMtaConfig, ReadyInfo, StartError

    try:
        delay = parse_delay(processing_delay)
    except ValueError as exc:
        raise UsageError(f"--processing-delay: {exc}") from None
    try:
        local_delay = parse_delay(delivery_delay)
    except ValueError as exc:
        raise UsageError(f"--delivery-delay: {exc}") from None
    if mailbox_root is None and (n_users or inbound is not None):
        raise UsageError("--users and --inbound need --mailbox-root (local delivery)")
    try:
        inbound_at = parse_address(inbound or "127.0.0.1:0")
    except ValueError as exc:
        raise UsageError(f"--inbound: {exc}") from None
    if not allow_remote:
        named = [("--listen", listen), ("--relay-to", relay_to)]
        check_local(named + ([("--inbound", inbound_at)] if inbound is not None else []))
    tls = tls or tls_cert is not None
    if tls_required and not tls:
        raise UsageError("--tls-required needs --tls")
    if tls_key is not None and tls_cert is None:
        raise UsageError("--tls-key needs --tls-cert")
    users = auth_users(auth, auth_file)
    if auth_required and not users:
        raise UsageError(f"--auth-required needs a user (--auth-file, {AUTH_ENV} or --auth)")
    limits = limits_config(
        queue_bytes_limit=queue_bytes_limit,
        recipient_limit=recipient_limit,
        line_length_limit=line_length_limit,
        message_size_limit=message_size_limit,
        error_limit=error_limit,
        idle_timeout=idle_timeout,
    )
    try:
        faults = tuple(parse_fault(spec) for spec in fault_specs)
        check_faults(faults)
    except ValueError as exc:
        raise UsageError(f"--fault: {exc}") from None
    try:
        outages = tuple(parse_outage(spec) for spec in outage_specs)
        check_outages(outages)
    except ValueError as exc:
        raise UsageError(f"--outage: {exc}") from None
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
        mailbox_file_mode=0o644 if mailbox_readable else 0o600,
        delivery_delay=local_delay,
        inbound_host=inbound_at[0],
        inbound_port=inbound_at[1],
        tls=tls,
        tls_cert=tls_cert,
        tls_key=tls_key,
        tls_required=tls_required,
        auth_users=tuple(users),
        auth_required=auth_required,
        faults=faults,
        outages=outages,
        max_rate=max_rate,
        queue_limit=queue_limit,
        **limits,
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
        if faults:
            click.echo(f"fakemta: faults {', '.join(map(str, faults))} (seed {seed})")
        if outages:
            click.echo(f"fakemta: outages {', '.join(map(str, outages))}")
        if max_rate is not None:
            click.echo(f"fakemta: relaying at most {max_rate:g} msgs/s")
        click.echo(
            json.dumps(
                {
                    "submit": f"{listen[0]}:{port}",
                    "relay_to": f"{relay_to[0]}:{relay_to[1]}",
                    "inbound": inbound_addr,
                    "cert_file": cert,
                    "faults": [str(f) for f in faults],
                    "outages": [o.as_dict() for o in outages],
                    "max_rate": max_rate,
                    "queue_limit": queue_limit,
                    "limits": limits,
                }
            )
        )
        sys.stdout.flush()

    try:
        stats = uvloop.run(serve(config, ready))
    except ValueError as exc:
        raise UsageError(f"fakemta: {exc}") from None
    except StartError as exc:
        raise RunError(f"fakemta {exc}") from None
    click.echo(f"fakemta: stopped; {json.dumps(stats)}")
