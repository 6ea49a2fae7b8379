"""The capacity search shown: a line per step as it goes (step, rate, verdict, best rate
proven so far, time left), the latency-vs-load table at the end, and capacity.html with the
latency-vs-load and backlog-vs-load plots. Reads capacity.json's entries; pure but for the
console and the file."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from bench.report.svgplot import (
    SECONDS_MARKS,
    HLine,
    Marker,
    Series,
    color,
    line_chart,
    linear_axis,
    log_axis,
    placeholder,
    short_n,
    short_s,
)

HTML_FILE = "capacity.html"
LATENCIES = ("p50", "p90", "p99", "max")


class FoundLike(Protocol):
    """The search's answer so far (:class:`bench.capacity.search.Found`)."""

    @property
    def sustainable(self) -> float | None: ...


def _s(v: float | None) -> str:
    return "—" if v is None else short_s(v)


def _rate(v: float | None) -> str:
    return "—" if v is None else f"{v:g}/s"


def step_line(entry: dict[str, Any], found: FoundLike, time_left_s: float) -> str:
    """A step as one line: what ran, its verdict and why, the best rate so far, time left."""
    kind = entry.get("kind", "step")
    what = f"confirm {entry['share']:.0%}" if kind == "confirm" else f"step {entry.get('n', '')}"
    verdict = str(entry.get("verdict", "?"))
    failed = entry.get("failed") or []
    why = f" ({', '.join(failed[:2])})" if failed else ""
    trial = f" trial {entry['trial'] + 1}" if entry.get("trial") else ""
    slope = entry.get("backlog_slope")
    backlog = f", backlog {slope:+.1f}/s" if isinstance(slope, int | float) else ""
    p99 = (entry.get("latency_s") or {}).get("p99")
    lat = f", p99 {short_s(p99)}" if isinstance(p99, int | float) else ""
    return (
        f"{what.strip()}: {entry['rate']:g} msgs/s{trial} {verdict}{why}{lat}{backlog}; "
        f"best proven {_rate(found.sustainable)}; {time_left_s:.0f}s left"
    )


class StepLines:
    """The search's live view: a line a step on *console*."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.n = 0

    def step(self, entry: dict[str, Any], found: FoundLike, time_left_s: float) -> None:
        if entry.get("kind") != "confirm":
            self.n += 1
        self.console.print(step_line({"n": self.n, **entry}, found, time_left_s), highlight=False)


def load_table(doc: dict[str, Any]) -> Table:
    """Latency vs load: every step and confirmation by rate."""
    t = Table(title="Latency vs load", title_justify="left")
    for head in ("rate/s", "what", "verdict", *LATENCIES, "backlog/s", "delivered/s", "failed"):
        t.add_column(head, justify="right" if head not in ("what", "verdict", "failed") else "left")
    rows = [("step", e) for e in doc.get("steps", [])]
    rows += [(f"confirm {e['share']:.0%}", e) for e in doc.get("confirm", [])]
    for what, e in sorted(rows, key=lambda r: (r[1]["rate"], r[0])):
        lat = e.get("latency_s") or {}
        b = e.get("backlog") or {}
        slope = e.get("backlog_slope")
        dlv = b.get("delivered_rate")
        t.add_row(
            f"{e['rate']:g}",
            what,
            str(e.get("verdict")),
            *(_s(lat.get(k)) for k in LATENCIES),
            "—" if slope is None else f"{slope:+.1f}",
            "—" if dlv is None else f"{dlv:.1f}",
            ", ".join((e.get("failed") or [])[:2]),
        )
    return t


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """The answer in words."""
    cap = doc["capacity"]
    rate, nf = cap["sustainable_rate"], cap["no_fault_rate"]
    out = []
    if rate is None:
        out.append(
            "no rate proven: even the start rate failed"
            if not doc["cut_short"]
            else "no rate proven before the search was cut short"
        )
    else:
        out.append(
            f"sustainable rate: {rate:g} msgs/s ({cap['per_minute']:g}/min) within the SLA and "
            f"keeping up; above it failed first: {cap['failed_by'] or '—'}"
        )
    if nf is not None:
        out.append(
            f"no-fault rate: {nf:g} msgs/s; above it first: {cap['no_fault_failed_by'] or '—'}"
        )
    if cap.get("confirmed") is not None:
        marks = ", ".join(f"{c['share']:.0%} {c['verdict']}" for c in doc.get("confirm", []))
        out.append(f"confirmations: {marks}")
        top = [c for c in doc.get("confirm", []) if c.get("share") == 1.2]
        if top and top[0]["verdict"] == "pass":
            out.append("120 % held too: the rate found is a lower bound (try a finer search)")
        if cap["confirmed"] is False:
            held = cap.get("confirmed_rate")
            line = "the longer 100 % run failed: treat the rate as an upper bound"
            if held is not None:
                line += f"; {held:g} msgs/s held for the longer run (80 %)"
            out.append(line)
    pop = doc.get("population")
    if pop and pop.get("users_supported") is not None:
        line = f"users supported at the peak hour: {pop['users_supported']:,}"
        if pop.get("headroom") is not None:
            line += f"; headroom over the expected peak {pop['expected_peak_rate']:g}/s: "
            line += f"{pop['headroom']:+.0%}"
        out.append(line)
        if pop.get("size_basis"):
            out.append(f"message sizes: {pop['size_basis']}")
    if doc["cut_short"]:
        out.append(f"the search was cut short: {doc['reason']}")
    return out


def print_capacity(console: Console, doc: dict[str, Any]) -> None:
    console.print(load_table(doc))
    for line in summary_lines(doc):
        console.print(line, highlight=False)


# -- capacity.html -----------------------------------------------------------------------
def _entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Steps judged (not cut short), by rate."""
    es = [e for e in doc.get("steps", []) + doc.get("confirm", []) if "latency_s" in e]
    return sorted(es, key=lambda e: e["rate"])


def latency_chart(doc: dict[str, Any]) -> str:
    es = _entries(doc)
    pts = {k: [(e["rate"], (e["latency_s"] or {}).get(k)) for e in es] for k in LATENCIES}
    values = [v for p in pts.values() for _, v in p if isinstance(v, int | float) and v > 0]
    if not values:
        return placeholder("latency-vs-load", "Latency vs load", "no step was measured")
    x = linear_axis(0, max(e["rate"] for e in es) * 1.05, short_n, "offered rate (msgs/s)")
    y = log_axis(min(values), max(values), short_s, "latency", SECONDS_MARKS)
    series = [Series(k, pts[k], color(i)) for i, k in enumerate(LATENCIES)]
    fails = [
        Marker(
            e["rate"],
            (e["latency_s"] or {}).get("p99") or min(values),
            "#d62728",
            f"{e['rate']:g}/s failed: {', '.join(e.get('failed', [])[:2])}",
        )
        for e in es
        if e.get("verdict") == "fail"
    ]
    return line_chart("latency-vs-load", "Latency vs load", x, y, series, markers=fails)


def backlog_chart(doc: dict[str, Any]) -> str:
    es = [e for e in _entries(doc) if e.get("backlog_slope") is not None]
    if not es:
        return placeholder("backlog-vs-load", "Backlog vs load", "no backlog was measured")
    slopes = [float(e["backlog_slope"]) for e in es]
    x = linear_axis(0, max(e["rate"] for e in es) * 1.05, short_n, "offered rate (msgs/s)")
    y = linear_axis(min(0.0, *slopes), max(1.0, *slopes) * 1.1, short_n, "backlog growth (msgs/s)")
    series = [
        Series("backlog slope", [(e["rate"], float(e["backlog_slope"])) for e in es], color(0))
    ]
    rate = doc["capacity"]["sustainable_rate"]
    lines = [HLine(0.0, "flat", "#888888")]
    marks = [
        Marker(
            e["rate"],
            float(e["backlog_slope"]),
            "#d62728" if e["verdict"] == "fail" else "#2ca02c",
            f"{e['rate']:g}/s {e['verdict']}",
        )
        for e in es
    ]
    title = "Backlog vs load" + (f" (sustainable {rate:g}/s)" if rate is not None else "")
    return line_chart("backlog-vs-load", title, x, y, series, lines, markers=marks)


def capacity_html(doc: dict[str, Any]) -> str:
    words = "".join(f"<p>{escape(line)}</p>" for line in summary_lines(doc))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>mailsla capacity: {escape(str(doc.get('scenario')))}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:60em}</style></head><body>"
        f"<h1>Capacity of {escape(str(doc.get('scenario')))}</h1>{words}"
        f"{latency_chart(doc)}{backlog_chart(doc)}</body></html>\n"
    )


def write_html(folder: Path, doc: dict[str, Any]) -> Path:
    path = folder / HTML_FILE
    path.write_text(capacity_html(doc), encoding="utf-8")
    return path
