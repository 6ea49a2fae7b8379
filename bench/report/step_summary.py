"""A Markdown summary of a run for GitHub Actions, appended to the file that
``GITHUB_STEP_SUMMARY`` names: verdict, counts, SLA checks, key latencies, availability and the
baseline comparison (and how the baseline's scenario differs, when it does)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.report.deltas import fmt_delta, fmt_value
from bench.report.filters import (
    RATE_HEAD,
    latency_lines,
    rate_rows,
    result_word,
    trec_line,
    verdict_word,
)
from bench.report.terminal import fmt_check_value, fmt_rate, fmt_s
from bench.verdict.comparable import Difference, show
from bench.verdict.compare import OK, Row, regressed

KEY_METRICS = ("send_delay", "receive_delay", "submit_latency")
COUNT_KEYS = (
    "planned",
    "sent",
    "accepted",
    "delivered",
    "undelivered",
    "in_flight_at_stop",
    "rejected",
    "failed",
)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows), ""]


def _rows_table(rows: Sequence[Row]) -> list[str]:
    body = []
    for r in rows:
        delta, pct = fmt_delta(r)
        verdict = f"**{r.verdict}**" if r.verdict != OK else r.verdict
        body.append(
            [
                r.metric,
                r.stat,
                fmt_value(r, r.baseline),
                fmt_value(r, r.current),
                delta,
                pct,
                r.tolerance,
                verdict,
            ]
        )
    header = ("metric", "stat", "baseline", "current", "delta", "delta %", "tolerance", "verdict")
    return _table(header, body)


def markdown(
    doc: dict[str, Any],
    rows: Sequence[Row] | None = None,
    differences: Sequence[Difference] = (),
) -> str:
    """The summary of one run (and its comparison with a baseline) as Markdown."""
    run = doc.get("run", {})
    name = (run.get("scenario") or {}).get("name", "run")
    sla = doc.get("sla", {})
    bad = regressed(rows or ())
    status = run.get("status", "completed")
    verdict = verdict_word(str(sla.get("verdict", "fail")))
    if status != "completed":
        verdict = f"{status.upper()}: {run.get('reason')}"
    elif bad:
        verdict += f", {len(bad)} REGRESSED"
    icon = "✅" if verdict == "PASS" else "❌"
    out = [f"## {icon} mailsla {name}: {verdict}", ""]
    c = doc.get("counts", {})
    out += [", ".join(f"{k.replace('_', ' ')} **{c[k]}**" for k in COUNT_KEYS if k in c), ""]
    acc = doc.get("accounting")
    if acc is not None and not acc.get("holds"):
        out += [f"**accounting identity broken**: {acc.get('identity')}", ""]
    checks = [
        [
            ch["name"],
            fmt_check_value(ch["name"], ch["observed"]),
            ch["op"],
            fmt_check_value(ch["name"], ch["limit"], limit=True),
            "pass" if ch["pass"] else f"**{result_word(ch)}**",
            ch.get("source", ""),
            ch.get("note", ""),
        ]
        for ch in sla.get("checks", [])
    ]
    if checks:
        out += ["### SLA checks", ""]
        out += _table(("check", "observed", "op", "limit", "result", "from", "note"), checks)
    if rate_rows(doc):
        out += ["### Filters", ""]
        out += _table(RATE_HEAD, rate_rows(doc))
        out += [trec_line(doc), ""]
        out += [x for line in latency_lines(doc) for x in (line, "")]
    metrics: Mapping[str, Any] = doc.get("metrics", {})
    lat = [
        [
            m,
            str(metrics[m]["count"]),
            fmt_s(metrics[m]["percentiles_s"].get("50")),
            fmt_s(metrics[m]["percentiles_s"].get("99")),
            fmt_s(metrics[m]["max_s"]),
        ]
        for m in KEY_METRICS
        if metrics.get(m, {}).get("count")
    ]
    if lat:
        out += ["### Latency", ""]
        out += _table(("metric", "count", "p50", "p99", "max"), lat)
    a = doc.get("availability")
    if a:
        out += [
            f"Availability: no-fault rate {fmt_rate(a.get('no_fault_rate'))}, connectivity "
            f"{fmt_rate(a.get('connectivity_rate'))} over {a.get('windows')} window(s).",
            "",
        ]
    if rows or differences:
        out += ["### Baseline comparison", ""]
    if differences:
        verb = "compared anyway (`--allow-different`)" if rows else "not compared"
        out += [f"The baseline's scenario differs, {verb}:", ""]
        out += [
            f"- `{d.key}`: baseline {show(d.baseline)}, current {show(d.current)}"
            for d in differences
        ]
        out.append("")
    if rows:
        if bad:
            out += [f"Regressed: {', '.join(f'`{r.name}`' for r in bad)}", ""]
            out += _rows_table(bad)
        else:
            out += ["No stat regressed.", ""]
        out += ["<details><summary>All compared stats</summary>", ""]
        out += [*_rows_table(rows), "</details>", ""]
    return "\n".join(out) + "\n"


def append_summary(
    doc: dict[str, Any],
    rows: Sequence[Row] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    differences: Sequence[Difference] = (),
) -> Path | None:
    """Append :func:`markdown` to ``$GITHUB_STEP_SUMMARY`` when it is set; the file, or None."""
    target = (os.environ if env is None else env).get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as f:
        f.write("\n" + markdown(doc, rows, differences))
    return path
