"""``mailsla postfix``: a throwaway Postfix (and Dovecot) to try mailsla against, run in the
foreground until Ctrl-C. It prints where it listens, then one JSON line with the same."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import click

from bench.cli.options import address_param
from bench.errors import StartupError, UsageError


@click.command()
@click.option(
    "--port", default=2525, show_default=True, type=click.IntRange(1, 65535), help="SMTP port."
)
@click.option(
    "--relay-to",
    default="127.0.0.1:2526",
    show_default=True,
    callback=address_param,
    help="Where remote-domain mail goes: mailsla's post office (postoffice.listen).",
)
@click.option("--relay-domain", default="remote.test", show_default=True)
@click.option("--local-domain", default="local.test", show_default=True)
@click.option(
    "--users",
    "n_users",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Local mailboxes user0 .. userN-1 (one Maildir each).",
)
@click.option(
    "--dir",
    "base",
    default="/tmp/mailsla-postfix",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The instance's folder (config, queue, log, mail); removed at exit.",
)
@click.option(
    "--imap-port",
    default=0,
    type=click.IntRange(0, 65535),
    help="Also run Dovecot IMAP over the Maildirs on this port (0: no IMAP).",
)
@click.option("--imap-password", default="mailsla", show_default=True)
@click.option(
    "--filters",
    is_flag=True,
    help="Also run rspamd (milter: GTUBE rejected) and ClamAV's clamd (a local EICAR "
    "signature) on every message; see scenarios/filters.toml.",
)
@click.option(
    "--spam-action",
    type=click.Choice(["reject", "junk"]),
    default="reject",
    show_default=True,
    help="With --filters: what rspamd does with spam. junk: rspamd's add-header GTUBE "
    '(message.gtube = "add_header") is tagged X-Spam: Yes and local mail goes through '
    "Dovecot LMTP, whose Sieve rule files it into Junk; see scenarios/filters-junk.toml.",
)
def postfix(
    port: int,
    relay_to: tuple[str, int],
    relay_domain: str,
    local_domain: str,
    n_users: int,
    base: Path,
    imap_port: int,
    imap_password: str,
    filters: bool,
    spam_action: str,
) -> None:
    """Run a throwaway Postfix (and Dovecot) in a folder of its own, until Ctrl-C.

    Remote-domain mail is relayed to mailsla's post office; local-domain mail is delivered to
    one Maildir per user under DIR/mail/<local domain>/. Needs root and Debian's postfix (and
    dovecot-imapd for --imap-port; rspamd and clamav-daemon for --filters; dovecot-lmtpd and
    dovecot-sieve for --spam-action junk). See scenarios/postfix.toml, scenarios/filters.toml
    and scenarios/filters-junk.toml.
    """
    from bench.harness.daemons import HarnessError, free_port
    from bench.harness.dovecot import ThrowawayDovecot
    from bench.harness.filters import ThrowawayFilters
    from bench.harness.postfix import ThrowawayPostfix

    if os.geteuid() != 0:
        raise UsageError("a throwaway Postfix needs root (it runs Postfix's own daemons)")
    junk = spam_action == "junk"
    if junk and not filters:
        raise UsageError("--spam-action junk: add --filters (rspamd is what marks the spam)")
    fl = ThrowawayFilters(Path(f"{base}-filters"), test_patterns=junk) if filters else None
    dc: ThrowawayDovecot | None = None
    mail_root = base / "mail" / local_domain
    if junk:  # Dovecot delivers (LMTP, Sieve into Junk) and serves IMAP, on a free port if 0
        imap_port = imap_port or free_port()
        dc = ThrowawayDovecot(mail_root, port=imap_port, password=imap_password, lmtp=True)
    pf = ThrowawayPostfix(
        f"{relay_to[0]}:{relay_to[1]}",
        relay_domain=relay_domain,
        local_domain=local_domain,
        port=port,
        base=base,
        users=n_users,
        milter=fl.milter if fl is not None else None,
        lmtp=dc.lmtp_socket if dc is not None else None,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        if fl is not None:
            fl.start()
        if dc is not None:
            dc.start()
        pf.start()
        info: dict[str, object] = {
            "submit": f"127.0.0.1:{port}",
            "inbound": f"127.0.0.1:{port}",
            "relay_to": f"{relay_to[0]}:{relay_to[1]}",
            "maildir": str(pf.maildir_root),
            "imap": None,
            "filters": None,
        }
        if imap_port and dc is None:
            pf.maildir_root.mkdir(parents=True, exist_ok=True)
            dc = ThrowawayDovecot(pf.maildir_root, port=imap_port, password=imap_password)
            dc.start()
        if dc is not None:
            info["imap"] = f"127.0.0.1:{imap_port}"
        click.echo(
            f"postfix: SMTP 127.0.0.1:{port}, relaying {relay_domain} to "
            f"{info['relay_to']}, delivering {local_domain} ({n_users} users) to "
            f"{info['maildir']}/<user>/, log {pf.base}/log/maillog"
        )
        if fl is not None:
            scenario = f"scenarios/{'filters-junk' if junk else 'filters'}.toml"
            info["filters"] = {
                "milter": fl.milter,
                "clamd": f"unix:{fl.clamd.socket}",
                "scenario": scenario,
                "spam_action": spam_action,
            }
            what = "add-header GTUBE tagged, Sieve files it into Junk" if junk else "GTUBE rejected"
            click.echo(
                f"filters: rspamd milter {fl.milter} ({what}, log "
                f"{fl.rspamd.base}/log/rspamd.log), clamd unix:{fl.clamd.socket} (EICAR, log "
                f"{fl.clamd.base}/clamd.log); run {scenario}"
            )
        if dc is not None:
            click.echo(f"dovecot: IMAP 127.0.0.1:{imap_port}, any user, password {imap_password}")
        click.echo(json.dumps(info))
        sys.stdout.flush()
        stop.wait()
    except HarnessError as exc:
        raise StartupError(*(str(exc).splitlines() or ["did not start"])) from None
    finally:
        if dc is not None:
            dc.stop()
        pf.stop()
        if fl is not None:
            fl.stop()
    click.echo("postfix: stopped")
