"""The HTML report: ``results/<run>/report.html``, one self-contained page (inline CSS and SVG,
nothing fetched) built from result.json and, when present, timeseries.csv.

:func:`build_html` is pure; :func:`write_report` reads the run folder and writes the page.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from bench.config.units import format_duration
from bench.report.charts import (
    TimeSeries,
    availability_chart,
    fault_bands,
    latency_chart,
    latency_metrics,
    metric_order,
    parse_timeseries,
    rates_chart,
    spectrum_chart,
    thin,
)
from bench.report.filters import (
    FATE_HEAD,
    RATE_HEAD,
    fate_rows,
    latency_lines,
    rate_rows,
    result_word,
    trec_line,
    verdict_word,
)
from bench.report.svgplot import placeholder
from bench.report.terminal import COUNT_ROWS, fmt_check_value, fmt_rate, fmt_s

REPORT_NAME = "report.html"
TIMESERIES_NAME = "timeseries.csv"

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:4px 0}td,th{padding:3px 10px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}th{background:#f5f5f5}td.n{text-align:right;font-variant:tabular-nums}
.pass{color:#1a7f37;font-weight:600}.fail{color:#c62828;font-weight:700}.warn{color:#b26a00}
.verdict{padding:2px 10px;border-radius:4px;color:#fff}.verdict.pass{background:#1a7f37}
.verdict.fail{background:#c62828}.plots{display:flex;flex-wrap:wrap;gap:12px}
svg{background:#fff;border:1px solid #ddd}svg text{font:11px system-ui,sans-serif;fill:#333}
svg .ptitle{font-size:13px;font-weight:600}svg .alabel{fill:#555}
svg .empty{font-size:13px;fill:#888}
svg .frame{fill:none;stroke:#999}svg .grid{stroke:#e4e4e4}.dim{color:#777}
"""


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """An HTML table (no header row when *head* is empty); cells are already-escaped HTML."""
    th = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" if head else ""
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table>{th}{body}</table>"


def sla_html(doc: dict[str, Any]) -> str:
    """The SLA checks as a table."""
    rows = []
    for c in doc["sla"]["checks"]:
        word = result_word(c)
        ok = f'<span class="{"pass" if c["pass"] else "fail"}">{word}</span>'
        limit = fmt_check_value(c["name"], c["limit"], limit=True)
        rows.append(
            [
                escape(c["name"]),
                escape(fmt_check_value(c["name"], c["observed"])),
                escape(c["op"]),
                escape(limit),
                ok,
                escape(c["source"]),
                escape(c.get("note", "")),
            ]
        )
    head = ("check", "observed", "op", "limit", "result", "from", "note")
    return _table(head, rows, (1, 3))


def filters_html(doc: dict[str, Any]) -> str:
    """The filtering clauses: rates, fates per class, TREC's figures ("" without them)."""
    rows = rate_rows(doc)
    if not rows:
        return ""
    esc = [[escape(c) for c in r] for r in rows]
    fates = [[escape(c) for c in r] for r in fate_rows(doc)]
    return (
        "<h2>Filters</h2>"
        + _table(RATE_HEAD, esc, (1, 2, 5))
        + _table(FATE_HEAD, fates, (1,))
        + "".join(f'<p class="dim">{escape(x)}</p>' for x in (trec_line(doc), *latency_lines(doc)))
    )


def counts_html(doc: dict[str, Any]) -> str:
    """Message counts, a column per direction when the run went both ways."""
    c, lanes = doc["counts"], doc.get("directions", {})
    split = len(lanes) > 1
    head = ["state", *(lanes if split else []), "total" if split else "count", "meaning"]
    rows = []
    for key, meaning in COUNT_ROWS:
        if key not in c or (key == "failed_then_delivered" and not c[key]):
            continue
        per = [str(lane["counts"].get(key, "")) for lane in lanes.values()] if split else []
        rows.append(
            [escape(key.replace("_", " ")), *map(escape, per), str(c[key]), escape(meaning)]
        )
    return _table([escape(h) for h in head], rows, range(1, len(head) - 1))


def metrics_html(doc: dict[str, Any]) -> str:
    """Latency metrics: count, mean, min, percentiles, max."""
    rows = []
    for name in sorted(doc["metrics"], key=metric_order):
        m = doc["metrics"][name]
        if not m["count"]:
            continue
        p = m["percentiles_s"]
        vals = [
            m["mean_s"],
            m["min_s"],
            p.get("50"),
            p.get("90"),
            p.get("99"),
            p.get("99.9"),
            m["max_s"],
        ]
        rows.append([escape(name), str(m["count"]), *(escape(fmt_s(v)) for v in vals)])
    head = ("metric", "count", "mean", "min", "p50", "p90", "p99", "p99.9", "max")
    return _table(head, rows, range(1, 9))


def outcomes_html(doc: dict[str, Any]) -> str:
    """Rejections and failures by stage, or nothing when every send was accepted."""
    o = doc.get("outcomes") or {}
    rows = [
        ["rejected", r.get("direction", "send"), r["stage"], str(r["code"]), str(r["count"])]
        for r in o.get("rejected", [])
    ]
    rows += [
        ["failed", f.get("direction", "send"), f["stage"], f["error"], str(f["count"])]
        for f in o.get("failed", [])
    ]
    if not rows:
        return ""
    head = ("outcome", "direction", "stage", "reason", "count")
    return "<h2>Not accepted</h2>" + _table(head, [[escape(c) for c in r] for r in rows], (4,))


def availability_html(doc: dict[str, Any]) -> str:
    """No-fault rate, connectivity, the month's budget and outages, as a table."""
    a = doc.get("availability")
    if not a:
        return '<p class="dim">no availability recorded</p>'
    rows = [
        [
            "windows",
            f"{a['windows']} of {format_duration(a['window_s'])}; faults "
            f"{a['fault_windows']}, connectivity faults {a['connectivity_fault_windows']}",
        ],
        ["no-fault rate", fmt_rate(a["no_fault_rate"])],
        ["connectivity", fmt_rate(a["connectivity_rate"])],
    ]
    m = a.get("month") or {}
    if m.get("fault_min") is not None:
        rows.append(
            [
                "a 30-day month",
                f"{m['fault_min']:.1f} fault minutes "
                f"({m['fault_budget_share'] * 100:.0f} % of the {m['budget_min']:.1f}-minute "
                f"budget), {m['disconnected_min']:.1f} disconnected",
            ]
        )
    rows += [
        [
            "outage",
            f"{o['begin_s']:g}s – {o['end_s']:g}s: {o['failed']} of {o['attempts']} "
            f"attempts failed ({o['kind']})",
        ]
        for o in a.get("outages", [])
    ]
    rows.append(["accepted, then lost", str(a.get("accepted_then_lost", 0))])
    return _table(("what", "value"), [[escape(c) for c in r] for r in rows])


def header_html(doc: dict[str, Any]) -> str:
    """Title with the verdict, and the run's identity and times."""
    run, verdict = doc["run"], doc["sla"]["verdict"]
    sc = run.get("scenario") or {}
    name = sc.get("name", "?")
    rows = [["run", run.get("id", "")], ["status", run.get("status", "")]]
    if run.get("reason"):
        rows.append(["reason", run["reason"]])
    rows += [["started", run.get("started_at", "")], ["ended", run.get("ended_at", "")]]
    try:
        took = datetime.fromisoformat(run["ended_at"]) - datetime.fromisoformat(run["started_at"])
        rows.append(["duration", f"{took.total_seconds():.1f} s"])
    except (KeyError, TypeError, ValueError):
        pass
    rows.append(["scenario file", str(run.get("scenario_file", ""))])
    if run.get("overrides"):
        rows.append(["overrides", " ".join(run["overrides"])])
    system = run.get("system") or {}
    rows.append(["system", ", ".join(f"{k} {v}" for k, v in system.items() if v is not None)])
    load = sc.get("load") or {}
    if load:
        rows.append(
            [
                "load",
                ", ".join(
                    f"{k} {load[k]}"
                    for k in ("model", "rate", "duration", "sessions", "direction")
                    if k in load
                ),
            ]
        )
    rows.append(["seed", str(run.get("seed", ""))])
    vs = run.get("versions") or {}
    rows.append(["versions", ", ".join(f"{k} {v}" for k, v in vs.items())])
    cls = "pass" if verdict == "pass" else "fail"
    status = (
        ""
        if run.get("status") == "completed"
        else (f' <span class="warn">run {escape(str(run.get("status")))}</span>')
    )
    return (
        f'<h1>mailsla: {escape(name)} <span class="verdict {cls}">{escape(verdict_word(verdict))}'
        f"</span>{status}</h1>" + _table((), [[escape(str(c)) for c in r] for r in rows])
    )


def build_html(doc: dict[str, Any], ts: TimeSeries | None) -> str:
    """The whole report page for result.json *doc* and its time series (None: not recorded)."""
    checks = doc["sla"]["checks"]
    metrics = doc["metrics"]
    spectra = [
        spectrum_chart(n, metrics[n], checks)
        for n in sorted(metrics, key=metric_order)
        if metrics[n].get("count") and metrics[n].get("hdr")
    ]
    bands = fault_bands(doc)
    idle = latency_metrics(ts, with_values=False) if ts is not None else []
    merged = 1
    if ts is not None:
        ts, merged = thin(ts)
        timed = [rates_chart(ts, bands)] + [
            latency_chart(n, ts, bands) for n in latency_metrics(ts)
        ]
    else:
        no = "no time series recorded"
        timed = [
            placeholder("rates", "Messages per second", no),
            placeholder("latency", "Latency over time", no),
        ]
    t_end = ts.t[-1] if ts is not None else 0.0
    run_id = doc["run"].get("id", "")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>mailsla report {escape(run_id)}</title>",
        f"<style>{CSS}</style></head><body>",
        header_html(doc),
        "<h2>SLA checks</h2>",
        sla_html(doc),
        filters_html(doc),
        "<h2>Messages</h2>",
        counts_html(doc),
        outcomes_html(doc),
        "<h2>Latency</h2>",
        metrics_html(doc),
        "<h2>Percentile spectrum</h2>",
        '<p class="dim">Latency at each percentile; x is 1/(1−p) on a log scale. Dashed lines:'
        " the SLA's bounds and the scenario's thresholds (red when failed); dotted: the mean.</p>",
        '<div class="plots">' + "\n".join(spectra) + "</div>"
        if spectra
        else '<p class="dim">no latency values recorded</p>',
        "<h2>Over time</h2>",
        '<p class="dim">Per interval; fault windows shaded red, outages orange.'
        + (f" Each point merges {merged} intervals (latency: their largest)." if merged > 1 else "")
        + (f" No values in any interval: {escape(', '.join(idle))}." if idle else "")
        + "</p>",
        '<div class="plots">' + "\n".join(timed) + "</div>",
        "<h2>Availability</h2>",
        availability_html(doc),
        '<div class="plots">' + availability_chart(doc, t_end) + "</div>",
        f'<p class="dim">mailsla {escape(str((doc["run"].get("versions") or {}).get("mailsla")))}'
        f" · schema {escape(str(doc.get('schema')))}</p>",
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p) + "\n"


def read_timeseries(run_dir: Path) -> TimeSeries | None:
    """The run's timeseries.csv, or None when there is none."""
    path = run_dir / TIMESERIES_NAME
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as f:
        return parse_timeseries(f)


def write_report(run_dir: Path) -> Path:
    """Build ``run_dir/report.html`` from the run's result.json (and timeseries.csv) and
    return its path; written atomically."""
    doc = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    page = build_html(doc, read_timeseries(run_dir))
    path = run_dir / REPORT_NAME
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".html", dir=run_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
