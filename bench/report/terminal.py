"""The terminal report: counts, metrics and SLA checks of a finished run, as rich tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from bench.config.units import format_duration
from bench.report.filters import (
    FATE_HEAD,
    RATE_HEAD,
    fate_rows,
    latency_lines,
    pct,
    rate_rows,
    result_word,
    trec_line,
    verdict_word,
)
from bench.report.nodes import nodes_table
from bench.run.results import RunResult


def fmt_s(v: float | None) -> str:
    """A latency in seconds, in the unit that reads best: 850µs, 12.3ms, 1.204s."""
    if v is None:
        return "–"
    a = abs(v)
    if a < 1e-3:
        return f"{v * 1e6:.0f}µs"
    if a < 1:
        return f"{v * 1e3:.3g}ms" if a < 0.1 else f"{v * 1e3:.1f}ms"
    return f"{v:.3f}s"


def fmt_rate(v: float | None) -> str:
    return "–" if v is None else f"{v * 100:.3f} %"


def fmt_check_value(name: str, v: float | None, *, limit: bool = False) -> str:
    """A check's observed value or limit, in its stat's unit: a rate in per cent, a count as a
    number (also ``send_delay.count[10s]``), else a duration (limits as a scenario writes them).
    """
    if v is None:
        return "no data"
    if name.startswith("filters."):
        return pct(v)
    if name.endswith("_rate"):
        return fmt_rate(v)
    if name.partition("[")[0].endswith(".count"):
        return f"{v:.0f}"
    return format_duration(v) if limit else fmt_s(v)


def _observed(check: dict[str, Any]) -> str:
    return fmt_check_value(check["name"], check["observed"])


def _limit(check: dict[str, Any]) -> str:
    return fmt_check_value(check["name"], check["limit"], limit=True)


COUNT_ROWS = (
    ("planned", "in the schedule"),
    ("sent", "sends started"),
    ("accepted", "250 after DATA"),
    ("delivered", "seen at the post office (send) or in the mailbox (receive)"),
    ("undelivered", "accepted, not delivered when the drain ended: lost"),
    ("in_flight_at_stop", "accepted, still on its way when the run was stopped"),
    ("rejected", "refused with an SMTP reply"),
    ("failed", "network error or timeout"),
    ("not_sent", "planned but never started (run stopped)"),
    ("late", "started later than load.late_after"),
    ("foreign", "unknown run or id at the post office or in the mailbox"),
    ("duplicate", "a second copy of an id"),
    ("failed_then_delivered", "failed or rejected, yet delivered: the system kept it"),
)


# Shown when not zero, or when the run was stopped (where a reader looks for it).
SHOWN_IF_STOPPED = ("in_flight_at_stop",)


def counts_table(doc: dict[str, Any]) -> Table:
    c = doc["counts"]
    lanes = doc.get("directions", {})
    split = len(lanes) > 1  # both directions: a column each, then the total
    t = Table(title="Messages", title_justify="left", show_edge=False)
    t.add_column("state")
    if split:
        for d in lanes:
            t.add_column(d, justify="right")
    t.add_column("total" if split else "count", justify="right")
    t.add_column("meaning", style="dim")
    stopped = doc["run"].get("status", "completed") != "completed"
    for key, meaning in COUNT_ROWS:
        if not c.get(key) and (
            key == "failed_then_delivered" or (key in SHOWN_IF_STOPPED and not stopped)
        ):
            continue
        per = [str(lane["counts"].get(key, 0)) for lane in lanes.values()] if split else []
        t.add_row(key.replace("_", " "), *per, str(c.get(key, 0)), meaning)
    return t


def metrics_table(doc: dict[str, Any]) -> Table:
    t = Table(title="Latency", title_justify="left", show_edge=False)
    t.add_column("metric")
    for col in ("count", "mean", "min", "p50", "p90", "p99", "p99.9", "max"):
        t.add_column(col, justify="right")
    for name, m in doc["metrics"].items():
        if not m["count"] and "stage." in name:
            continue  # a stage this run never went through (STARTTLS, AUTH)
        p = m["percentiles_s"]
        t.add_row(
            name,
            str(m["count"]),
            fmt_s(m["mean_s"]),
            fmt_s(m["min_s"]),
            fmt_s(p["50"]),
            fmt_s(p["90"]),
            fmt_s(p["99"]),
            fmt_s(p["99.9"]),
            fmt_s(m["max_s"]),
        )
    return t


def outcomes_table(doc: dict[str, Any]) -> Table | None:
    o = doc["outcomes"]
    if not o["rejected"] and not o["failed"]:
        return None
    t = Table(title="Not accepted", title_justify="left", show_edge=False)
    for col in ("outcome", "direction", "stage", "reason", "count"):
        t.add_column(col, justify="right" if col == "count" else "left")
    for r in o["rejected"]:
        where = r.get("direction", "send")
        t.add_row("rejected", where, r["stage"], str(r["code"]), str(r["count"]))
    for f in o["failed"]:
        t.add_row("failed", f.get("direction", "send"), f["stage"], f["error"], str(f["count"]))
    return t


def availability_table(doc: dict[str, Any]) -> Table | None:
    a = doc.get("availability")
    if not a:
        return None
    t = Table(title="Availability", title_justify="left", show_edge=False, show_header=False)
    t.add_column("what")
    t.add_column("value")
    w = format_duration(a["window_s"])
    t.add_row(
        "windows",
        f"{a['windows']} of {w}; faults {a['fault_windows']}, "
        f"connectivity faults {a['connectivity_fault_windows']} (> 10 % of users hit)",
    )
    t.add_row("no-fault rate", fmt_rate(a["no_fault_rate"]))
    t.add_row("connectivity", fmt_rate(a["connectivity_rate"]))
    m = a["month"]
    if m["fault_min"] is not None:
        t.add_row(
            "a 30-day month",
            f"{m['fault_min']:.1f} fault minutes ({m['fault_budget_share'] * 100:.0f} % of the "
            f"{m['budget_min']:.1f}-minute budget), {m['disconnected_min']:.1f} disconnected",
        )
    for o in a["outages"]:
        t.add_row(
            "outage",
            f"{o['begin_s']:.0f}s – {o['end_s']:.0f}s after the start: {o['failed']} of "
            f"{o['attempts']} attempts failed ({o['kind']})",
        )
    if a["accepted_then_lost"]:
        t.add_row("accepted, then lost", Text(str(a["accepted_then_lost"]), "bold red"))
    return t


def sla_table(doc: dict[str, Any]) -> Table:
    sla = doc["sla"]
    verdict = verdict_word(sla["verdict"])
    style = "bold green" if verdict == "PASS" else "bold red"
    t = Table(
        title=Text.assemble("SLA checks: ", (verdict, style)), title_justify="left", show_edge=False
    )
    for col in ("check", "observed", "op", "limit", "result", "from", "note"):
        t.add_column(col)
    for c in sla["checks"]:
        word = result_word(c)
        ok = Text(word, {"pass": "green", "FAIL": "bold red"}.get(word, "bold yellow"))
        t.add_row(c["name"], _observed(c), c["op"], _limit(c), ok, c["source"], c.get("note", ""))
    return t


def filters_tables(doc: dict[str, Any]) -> list[Any]:
    """The filtering clauses' rates and the fates per class (nothing without labelled traffic)."""
    rows = rate_rows(doc)
    if not rows:
        return []
    t = Table(title="Filters", title_justify="left", show_edge=False)
    for col in RATE_HEAD:
        t.add_column(col)
    for r in rows:
        t.add_row(*r)
    fates = Table(show_edge=False)
    for col in FATE_HEAD:
        fates.add_column(col)
    for r in fate_rows(doc):
        fates.add_row(*r)
    lines = [Text(line) for line in (trec_line(doc), *latency_lines(doc))]
    return [t, fates, *lines, Text("")]


def render(result: RunResult) -> Group:
    doc = result.doc
    parts: list[Any] = [counts_table(doc), Text(""), metrics_table(doc), Text("")]
    o = outcomes_table(doc)
    if o is not None:
        parts += [o, Text("")]
    av = availability_table(doc)
    if av is not None:
        parts += [av, Text("")]
    parts += filters_tables(doc)
    nodes = nodes_table(doc)
    if nodes is not None:
        parts += [nodes, Text("")]
    parts.append(sla_table(doc))
    acc = doc["accounting"]
    parts.append(Text(f"\naccounting: {acc['identity']}: {'holds' if acc['holds'] else 'BROKEN'}"))
    for warning in doc["run"].get("warnings", []):
        parts.append(Text(f"warning: {warning}", "yellow"))
    if result.status != "completed":
        parts.append(Text(f"run {result.status}: {result.reason}", "bold yellow"))
    parts.append(Text(f"result: {result.path}"))
    return Group(*parts)


def print_report(console: Console, result: RunResult) -> None:
    console.print(render(result))
