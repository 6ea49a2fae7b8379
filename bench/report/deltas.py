"""A comparison of two runs (:mod:`bench.verdict.compare`) as people read it: values in their
units, signed changes, and the rich table that ``compare`` and ``run --baseline`` print (the
SLA's rows first, as the comparison orders them), fitted to the terminal or, when the output is
not one, at its own width."""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO

from rich.console import Console
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
    if row.kind == "per_s":
        return f"{v:.4g}/s"
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
    elif row.kind == "per_s":
        text = f"{d:+.3g}/s"
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
    """The comparison as a rich table; per-stage rows that are ok only with *show_all*. Notes
    are numbered footnotes under the table (one per distinct text), so that the table stays
    narrow enough for a terminal (about 110 columns; a narrower one cuts cells short, never
    wraps a row onto several lines)."""
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
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("verdict", no_wrap=True)
    notes = list(dict.fromkeys(r.note for r in shown if r.note))
    if notes:
        t.add_column("note", style="dim", no_wrap=True)
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
            *([f"[{notes.index(r.note) + 1}]" if r.note else ""] if notes else []),
        )
    caption = [f"[{i}] {note}" for i, note in enumerate(notes, start=1)]
    if hidden:
        caption.append(f"{hidden} ok rows of stage.* metrics not shown (--all shows them)")
    if caption:
        t.caption = Text("\n".join(caption), style="dim")
        t.caption_justify = "left"
    return t


def print_fitted(table: Table, *, stderr: bool = False, file: IO[str] | None = None) -> None:
    """Print *table* to stdout (or stderr, or *file*): fitted to the terminal when it is one,
    else at the table's own width, so that a log or a pipe gets it unwrapped."""
    console = Console(file=file, stderr=stderr, highlight=False)
    if not console.is_terminal:
        width = Console(width=1000).measure(table).maximum
        console = Console(file=file, stderr=stderr, highlight=False, width=max(width, 40))
    console.print(table)
