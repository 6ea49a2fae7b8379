"""A comparison of two runs (:mod:`bench.verdict.compare`) as people read it: values in their
units, signed changes, and the rich table that ``compare`` and ``run --baseline`` print."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from bench.report.terminal import fmt_rate, fmt_s
from bench.verdict.compare import BETTER, MISSING, NOISE, OK, REGRESSED, Row, regressed


def fmt_value(row: Row, v: float | None) -> str:
    """A row's value in its unit: a latency, a count or a rate."""
    if v is None:
        return "–"
    if row.kind == "rate":
        return fmt_rate(v)
    return f"{v:.0f}" if row.kind == "count" else fmt_s(v)


def fmt_delta(row: Row) -> tuple[str, str]:
    """The change and the change in %, signed."""
    d = row.delta
    if d is None:
        return "–", "–"
    if row.kind == "rate":
        text = f"{d * 100:+.3f}pp"
    elif row.kind == "count":
        text = f"{d:+.0f}"
    else:
        text = ("+" if d >= 0 else "-") + fmt_s(abs(d))
    pct = row.delta_pct
    return text, "–" if pct is None else f"{pct:+.1f}%"


VERDICT_STYLE = {
    OK: "green",
    BETTER: "bold green",
    NOISE: "yellow",
    REGRESSED: "bold red",
    MISSING: "dim",
}


def _shown(row: Row) -> bool:
    return row.verdict != OK or "stage." not in row.metric


def delta_table(rows: Sequence[Row], *, show_all: bool = False) -> Table:
    """The comparison as a rich table; per-stage rows that are ok only with *show_all*."""
    bad = regressed(rows)
    title = Text.assemble(
        "Baseline comparison: ",
        (f"{len(bad)} REGRESSED", "bold red") if bad else ("no regression", "bold green"),
    )
    t = Table(title=title, title_justify="left", show_edge=False)
    shown = [r for r in rows if show_all or _shown(r)]
    hidden = len(rows) - len(shown)
    t.add_column("metric", no_wrap=True)
    t.add_column("stat", no_wrap=True)
    for col in ("baseline", "current", "delta", "delta %", "tolerance"):
        t.add_column(col, justify="right")
    t.add_column("verdict", no_wrap=True)
    notes = any(r.note for r in shown)
    if notes:
        t.add_column("note", style="dim")
    for r in shown:
        delta, pct = fmt_delta(r)
        t.add_row(
            r.metric,
            r.stat,
            fmt_value(r, r.baseline),
            fmt_value(r, r.current),
            delta,
            pct,
            r.tolerance,
            Text(r.verdict, VERDICT_STYLE.get(r.verdict, "")),
            *([r.note] if notes else []),
        )
    if hidden:
        t.caption = f"{hidden} ok rows of stage.* metrics not shown (--all shows them)"
        t.caption_justify = "left"
    return t
