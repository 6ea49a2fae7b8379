"""``mailsla validate SCENARIO``: a dry run. The scenario is checked as ``run`` checks it (the
file, the ``--set`` overrides, the credentials in the environment, the Maildir folder of a
real system), and its resolved plan is printed: the system and addresses, the load, the
messages expected, how long it lasts with its drain, and every check that will be judged.
``--json`` prints the plan as one JSON object (schema ``mailsla.plan/1``) on stdout.

What ``run`` would refuse ends the command with exit 2 (after the plan); doubts that cost a run
nothing (:mod:`bench.config.advice`) are warnings on stderr.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from bench.cli.handler import print_warning
from bench.cli.options import SET_OPTION, load_scenario
from bench.cli.run import shorthands
from bench.config.advice import warnings
from bench.config.scenario import Scenario
from bench.config.units import format_duration
from bench.core.filters import rates
from bench.core.schedule import expected_count
from bench.errors import ExitCode, UsageError
from bench.report.plan import plan_lines
from bench.verdict.sla import evaluate

PLAN_SCHEMA = "mailsla.plan/1"


@click.command()
@click.argument("scenario", metavar="SCENARIO.toml")
@SET_OPTION
@click.option("--rate", metavar="N", help="Shorthand for --set load.rate=N (as in run).")
@click.option("--duration", metavar="D", help='Shorthand for --set load.duration="D".')
@click.option("--sessions", metavar="N", help="Shorthand for --set load.sessions=N.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON on stdout.")
def validate(
    scenario: str,
    overrides: tuple[str, ...],
    rate: str | None,
    duration: str | None,
    sessions: str | None,
    as_json: bool,
) -> ExitCode:
    """Check a scenario as run would, without running it, and print its plan."""
    overrides = (*overrides, *shorthands(rate=rate, duration=duration, sessions=sessions))
    sc = load_scenario(scenario, overrides)
    refused = refusals(sc, os.environ)
    plan = build_plan(sc, scenario, overrides)
    plan["warnings"] = warnings(sc)
    plan["refused"] = refused
    if as_json:
        click.echo(json.dumps(plan, indent=2))
    else:
        for line in plan_lines(plan):
            click.echo(line)
    for line in plan["warnings"]:
        print_warning(line)
    if refused:
        raise UsageError(*(f"{scenario}: {why}" for why in refused))
    if not as_json:
        click.echo(f"ok: {scenario}: scenario {sc.name!r} ({_what(sc)}, system {sc.system.kind})")
    return ExitCode.PASS


def _what(sc: Scenario) -> str:
    load_ = sc.load
    return (
        f"{load_.model}, {load_.rate:g}/s"
        if load_.model in ("constant", "poisson")
        else load_.model
    )


# -- what run would refuse ----------------------------------------------------------------------


def refusals(sc: Scenario, environ: Mapping[str, str]) -> list[str]:
    """What ``run`` refuses in this environment, one line each naming its field: credentials
    and the IMAP password unset, a CA file or a real system's Maildir folder missing."""
    out: list[str] = []
    for read in (sc.credentials, sc.imap_password):
        try:
            read(environ)
        except UsageError as exc:
            out.append(str(exc))
    ca = sc.system.ca_file
    if ca is not None and sc.system.tls != "off" and not Path(ca).is_file():
        out.append(f"system.ca_file: {ca} is not a file")
    out += maildir_refusals(sc)
    return out


def maildir_refusals(sc: Scenario) -> list[str]:
    """A real system's Maildir folder (``mailbox.maildir``) that is not there, or whose users'
    Maildirs mailsla could not create (it makes the missing ones, owned as the folder is)."""
    mb = sc.mailbox
    if sc.system.kind != "smtp" or "receive" not in sc.directions or mb.maildir is None:
        return []
    root = Path(mb.maildir)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        return [
            f"mailbox.maildir: {root} {what} (is the mail system running, and delivering "
            "there? for scenarios/postfix.toml, start `mailsla postfix` first)"
        ]
    from bench.observe.mailboxes import mailbox_users

    missing = [u for u in mailbox_users(sc) if not (root / u / "new").is_dir()]
    if not missing or _can_make_in(root):
        return []
    return [
        f"mailbox.maildir: {len(missing)} of the {sc.message.users} users' Maildirs are missing "
        f"under {root} (e.g. {missing[0]}/new), and this user cannot create them there owned "
        "as the folder is"
    ]


def _can_make_in(root: Path) -> bool:
    st = root.stat()
    if os.geteuid() == 0:
        return True
    groups = {os.getegid(), *os.getgroups()}
    mine = st.st_uid == os.geteuid() and st.st_gid in groups
    return mine and os.access(root, os.W_OK | os.X_OK)


# -- the plan -----------------------------------------------------------------------------------


def _addr(a: tuple[str, int] | None) -> str | None:
    if a is None:
        return None
    host = f"[{a[0]}]" if ":" in a[0] else a[0]
    return f"{host}:{a[1]}"


def build_plan(sc: Scenario, source: str, overrides: tuple[str, ...] = ()) -> dict[str, Any]:
    """The resolved plan of *sc* as a JSON-friendly dict (schema ``mailsla.plan/1``)."""
    from bench.run.wiring import resolve_workers, usable_cores

    cores = usable_cores()
    resolved = resolve_workers(sc, cores)
    load_, dirs = sc.load, sc.directions
    system: dict[str, Any] = {
        "kind": sc.system.kind,
        "tls": sc.system.tls,
        "auth": sc.system.auth.model_dump() if sc.system.auth else None,
    }
    if sc.system.kind == "fakemta":
        system["submit"] = _addr(sc.fakemta.listen) if "send" in dirs else None
        system["inbound"] = _addr(sc.fakemta.inbound) if "receive" in dirs else None
    else:
        system["submit"] = _addr(sc.system.submit)
        system["inbound"] = _addr(sc.system.inbound)
    mb = sc.mailbox
    plan: dict[str, Any] = {
        "schema": PLAN_SCHEMA,
        "scenario_file": source,
        "overrides": list(overrides),
        "name": sc.name,
        "seed": sc.seed,
        "system": system,
        "postoffice": (
            {"listen": _addr(sc.postoffice.listen), "domain": sc.postoffice.domain}
            if "send" in dirs
            else None
        ),
        "mailbox": (
            {
                "domain": mb.domain,
                "watch": mb.watch,
                "maildir": mb.maildir,
                "imap": _addr(mb.imap),
                "dovecot": mb.watch == "imap" and mb.imap is None,
            }
            if "receive" in dirs
            else None
        ),
        "load": {
            "model": load_.model,
            "rate": load_.rate if load_.model in ("constant", "poisson") else None,
            "steps": [{"rate": s.rate, "duration_s": s.duration} for s in load_.steps]
            if load_.model == "steps"
            else None,
            "sessions": load_.sessions,
            "depth": load_.depth,
            "client": load_.client,
            "connection": load_.connection,
            "think_time_s": load_.think_time,
            "max_messages": load_.max_messages,
            "direction": load_.direction,
            "receive_share": load_.receive_share if load_.direction == "both" else None,
            "workers": resolved.load.workers,
            "postoffice_workers": resolved.postoffice.workers if "send" in dirs else None,
            "cores": cores,
        },
        "expected_messages": _expected(sc),
        "duration_s": {
            "sending": load_.sending_s,
            "drain": load_.drain,
            "max": load_.sending_s + load_.drain,
        },
        "message": {
            "size_bytes": sc.message.size,
            "recipients": sc.message.recipients,
            "users": sc.message.users,
            "sender": sc.message.sender,
            "mix": sc.message.mix.shares() if sc.message.mix is not None else None,
        },
        "fakemta": _fakemta(sc) if sc.system.kind == "fakemta" else None,
        "checks": _checks(sc),
    }
    return plan


def _expected(sc: Scenario) -> dict[str, Any]:
    load_ = sc.load
    n = expected_count(load_)
    out: dict[str, Any] = {"total": n, "exact": load_.model in ("constant", "steps")}
    if n is None:
        return {**out, "exact": False, "send": None, "receive": None}
    if load_.direction == "both":  # the inbound share, spread evenly (schedule.is_inbound)
        inbound = math.floor(n * load_.receive_share)
    else:
        inbound = n if load_.direction == "receive" else 0
    return {**out, "send": n - inbound, "receive": inbound}


def _fakemta(sc: Scenario) -> dict[str, Any]:
    f = sc.fakemta
    return {
        "processing_delay": str(f.processing_delay),
        "delivery_delay": str(f.delivery_delay),
        "delivery_workers": f.delivery_workers,
        "max_rate": f.max_rate,
        "queue_limit": f.queue_limit,
        "faults": [_fault(x) for x in f.faults],
        "outages": [{"at_s": o.at, "duration_s": o.duration, "kind": o.kind} for o in f.outages],
    }


def _fault(f: Any) -> str:
    text = f"{f.stage} {f.kind} with probability {f.probability:g}"
    if f.code is not None:
        text += f", code {f.code}"
    if f.duration is not None:
        text += f", {f.duration}"
    if f.users < 1:
        text += f", for {f.users:.0%} of users"
    return text


def _limit(name: str, limit: float) -> str:
    if name.endswith(".count"):
        return f"{limit:.0f}"
    if name.startswith(("availability.", "filters.")):
        return f"{limit * 100:g}%"
    return format_duration(limit)


def _checks(sc: Scenario) -> list[dict[str, Any]]:
    """Every check the verdict will hold, in its order: judged now with no data, which gives
    the same names, limits and sources as the run's (the profile's for the lanes present)."""
    mix = sc.message.mix
    clauses = None
    if mix is not None:  # the filtering clauses of the classes sent
        shares = mix.shares()
        clauses = {k: r for k, r in rates({}).items() if shares.get(r.cls, 0) > 0}
    verdict = evaluate(
        sc.sla.profile,
        sc.sla.thresholds,
        {},
        0,
        sc.directions,
        availability={},
        filters=clauses,
    )
    thresholds = iter(sc.sla.thresholds)
    out = []
    for c in verdict.checks:
        d: dict[str, Any] = {"name": c.name, "op": c.op, "limit": c.limit, "source": c.source}
        d["text"] = f"{c.name} {c.op} {_limit(c.name, c.limit)}"
        d.update(window_s=None, abort_on_fail=False, grace_s=0.0)
        if c.source == "threshold":
            t = next(thresholds)
            d.update(text=t.text, window_s=t.window_s, abort_on_fail=t.abort_on_fail)
            d["grace_s"] = t.grace_s
        out.append(d)
    return out
