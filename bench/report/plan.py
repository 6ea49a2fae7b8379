"""The resolved plan of a run (``mailsla validate``'s ``mailsla.plan/1`` document, built by
:func:`bench.cli.validate.build_plan`) in the few lines people read. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.config.units import format_duration, format_size


def _check_line(c: Mapping[str, Any]) -> str:
    notes = [c["source"]]
    if c["name"].endswith("_delay.max") and c["source"] == "exmail":
        notes.append("undelivered mail counts as over the limit")
    if c["window_s"] is not None:
        notes.append(f"in every {format_duration(c['window_s'])} window")
    if c["abort_on_fail"]:
        grace = f" after {format_duration(c['grace_s'])}" if c["grace_s"] else ""
        notes.append(f"abort_on_fail{grace}: stops the run when it fails")
    return f"{c['text']}  ({'; '.join(notes)})"


def _at(addr: str | None) -> str:
    if addr is None:
        return "-"
    return addr[:-2] + " on a free port" if addr.endswith(":0") else addr


def plan_lines(plan: Mapping[str, Any]) -> list[str]:
    """The plan as a few lines people read."""
    rows: list[tuple[str, str]] = []
    src = plan["scenario_file"] + "".join(f" --set {o}" for o in plan["overrides"])
    rows.append(("scenario", f"{plan['name']} ({src}), seed {plan['seed']}"))
    s = plan["system"]
    if s["kind"] == "fakemta":
        parts = [f"{k} {_at(s[k])}" for k in ("submit", "inbound") if s[k]]
        rows.append(("system", "fakemta, started by mailsla: " + ", ".join(parts)))
    else:
        parts = [f"{k} {_at(s[k])}" for k in ("submit", "inbound") if s[k]]
        rows.append(("system", "smtp, an existing server: " + ", ".join(parts)))
    extras = []
    if s["tls"] != "off":
        extras.append(f"TLS {s['tls']}")
    if s["auth"]:
        a = s["auth"]
        extras.append(f"AUTH {a['mechanism']} as ${a['user_env']} / ${a['password_env']}")
    if extras:
        rows.append(("", ", ".join(extras)))
    if plan["postoffice"]:
        po = plan["postoffice"]
        rows.append(("", f"post office {_at(po['listen'])}, for mail to @{po['domain']}"))
    if plan["mailbox"]:
        mb = plan["mailbox"]
        if mb["watch"] == "maildir":
            where = f"Maildirs in {mb['maildir']}" if mb["maildir"] else "Maildirs (temporary)"
        else:
            where = f"IMAP {_at(mb['imap'])}" if mb["imap"] else "IMAP (a throwaway Dovecot)"
        rows.append(("", f"mailboxes @{mb['domain']}: {where}"))
    rows.append(("load", _load_text(plan["load"])))
    rows.append(("messages", _messages_text(plan)))
    d = plan["duration_s"]
    rows.append(
        (
            "duration",
            f"sending {format_duration(d['sending'])} + drain up to "
            f"{format_duration(d['drain'])} = at most {format_duration(d['max'])} (after start-up)",
        )
    )
    f = plan["fakemta"]
    if f:
        text = f"processing {f['processing_delay']}, delivery {f['delivery_delay']}"
        text += f", {f['delivery_workers']} delivery workers"
        for key, word in (("max_rate", "max rate"), ("queue_limit", "queue limit")):
            if f[key] is not None:
                text += f", {word} {f[key]:g}"
        rows.append(("fakemta", text))
        rows += [("", f"fault: {x}") for x in f["faults"]]
        rows += [
            (
                "",
                f"outage: {o['kind']} at {format_duration(o['at_s'])} for "
                f"{format_duration(o['duration_s'])}",
            )
            for o in f["outages"]
        ]
    checks = plan["checks"]
    if not checks:
        rows.append(("checks", 'none (sla.profile = "none" and no thresholds)'))
    for i, c in enumerate(checks):
        rows.append(("checks" if i == 0 else "", _check_line(c)))
    return [f"{head:<9} {text}".rstrip() for head, text in rows]


def _load_text(ld: Mapping[str, Any]) -> str:
    model = ld["model"]
    if model in ("constant", "poisson"):
        text = f"{model}, {ld['rate']:g} messages/s"
    elif model == "steps":
        steps = ", ".join(
            f"{s['rate']:g}/s for {format_duration(s['duration_s'])}" for s in ld["steps"]
        )
        text = f"steps: {steps}"
    else:
        think = format_duration(ld["think_time_s"])
        text = f"closed loop, each session sends again {think} after its reply"
    text += f", on {ld['sessions']} sessions"
    if ld["depth"] > 1:
        text += f" {ld['depth']} deep"
    if ld["client"] != "pipelined":
        text += f" ({ld['client']})"
    if ld["connection"] != "persistent":
        text += ", a connection per message"
    procs = f"{ld['workers']} generator process{'es' if ld['workers'] != 1 else ''}"
    if ld["postoffice_workers"] is not None:
        procs += f", {ld['postoffice_workers']} post office"
    return f"{text}; {procs} ({ld['cores']} cores here)"


def _messages_text(plan: Mapping[str, Any]) -> str:
    e, ld, m = plan["expected_messages"], plan["load"], plan["message"]
    if e["total"] is None:
        text = "as many as the sessions complete"
        if ld["max_messages"]:
            text += f", at most {ld['max_messages']}"
    else:
        text = f"{e['total']} expected" if e["exact"] else f"about {e['total']} expected"
        if ld["max_messages"] and e["total"] == ld["max_messages"]:
            text += " (load.max_messages)"
        if ld["direction"] == "both":
            text += f": {e['send']} sent by users, {e['receive']} coming in"
        elif ld["direction"] == "receive":
            text += " coming in"
    rcpt = m["recipients"]
    if m.get("mix"):
        text += " (" + ", ".join(f"{c} {v:.4g}" for c, v in m["mix"].items() if v) + ")"
    text += f"; {format_size(m['size_bytes'])} each, {rcpt} recipient{'s' if rcpt > 1 else ''}"
    return text + f" among {m['users']} users, from {m['sender']}"
