"""The monitor's month to date (the dict :func:`bench.monitor.status.month_to_date` returns) as
a terminal table and as a self-contained HTML page."""

from __future__ import annotations

import html
from typing import Any


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def _rows(st: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    b = st["budget"]
    month = st["month"]
    sections: list[tuple[str, list[tuple[str, str]]]] = [
        (
            f"Month {month['start']} – {month['end']} ({month['tz']})",
            [
                ("windows observed", _fmt(st["windows"])),
                ("fault windows", _fmt(st["fault_windows"])),
                ("connectivity fault windows", _fmt(st["connectivity_fault_windows"])),
                ("probes in flight", _fmt(st["inflight"])),
            ],
        ),
        (
            "Error budget (0.1 % of the month's real length; 43.2 min for 30 days)",
            [
                ("budget, minutes", _fmt(b["budget_min"])),
                ("fault minutes", _fmt(b["fault_min"])),
                ("spent", _fmt(b["budget_spent_share"])),
                ("burn rate", _fmt(b["burn_rate"])),
                ("projected fault minutes at month end", _fmt(b["projected_fault_min"])),
            ],
        ),
        (
            f"Outages ({len(st['outages'])}: runs of fault windows)",
            [
                (
                    f"{o['start']} – {o['end']}",
                    f"{o['windows']} window(s), {o['failed']} probes failed, {o['lost']} lost",
                )
                for o in st["outages"]
            ],
        ),
        ("Probes", [(k, _fmt(v)) for k, v in st["counts"].items()]),
        ("Failed by stage", [(k, _fmt(v)) for k, v in st["failed_by_stage"].items()]),
        (
            "Delays, seconds",
            [
                (f"{name} {stat}", _fmt(m[stat]))
                for name, m in st["metrics"].items()
                for stat in ("mean", "p50", "p99", "max")
            ],
        ),
        (
            f"SLA ({st['profile']}): {st['verdict'].upper()}",
            [
                (
                    f"{c['name']} {c['op']} {c['limit']:g}",
                    f"{_fmt(c['observed'])} {'pass' if c['pass'] else 'FAIL'}"
                    + (f" ({c['note']})" if c.get("note") else ""),
                )
                for c in st["checks"]
            ],
        ),
    ]

    return sections


def month_table(st: dict[str, Any]) -> str:
    """Plain-text tables of the month to date."""
    out: list[str] = []
    for title, rows in _rows(st):
        out.append(title)
        width = max((len(k) for k, _ in rows), default=0)
        out.extend(f"  {k.ljust(width)}  {v}" for k, v in rows)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def month_html(st: dict[str, Any]) -> str:
    """One HTML page of the month to date, no external assets."""
    parts = [
        "<!doctype html><meta charset=utf-8><title>mailsla monitor: month to date</title>",
        "<style>body{font:14px sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}"
        "td{border:1px solid #ccc;padding:2px 8px}</style>",
        "<h1>mailsla monitor: month to date</h1>",
    ]
    for title, rows in _rows(st):
        parts.append(f"<h2>{html.escape(title)}</h2><table>")
        parts.extend(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in rows
        )
        parts.append("</table>")
    return "\n".join(parts) + "\n"
