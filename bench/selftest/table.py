"""The selftest's table (terminal) and its JSON record."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bench.run.results import versions, write_json_atomic
from bench.selftest.figure import Figure


def _num(v: float | None, unit: str) -> str:
    if v is None:
        return "–"
    return f"{v:,.0f}" if unit.endswith("/s") else f"{v:.2f}"


def print_table(console: Console, figs: list[Figure]) -> None:
    t = Table(title="mailsla selftest (medians; A and B interleaved)", title_justify="left")
    for col in ("figure", "A", "B", "ratio / value", "goal", "met", "note"):
        t.add_column(col, overflow="fold")
    for f in figs:
        # the medians the ratio is made of (an even count: the mean of the middle two)
        a = f"{_num(statistics.median(f.a) if f.a else None, f.unit)} {f.a_label}"
        b = f"{_num(statistics.median(f.b) if f.b else None, f.unit)} {f.b_label}"
        r = f.ratio
        shown = "–" if r is None else (f"{r:.2f}" if f.value is None else f"{r:.2f} {f.unit}")
        met = (
            Text("–")
            if f.met is None
            else (Text("yes", "green") if f.met else Text("NO", "bold red"))
        )
        t.add_row(f.name, a if f.a else "", b if f.b else "", shown, f.goal, met, f.note)
    console.print(t)


def save(
    figs: list[Figure], out: Path | None, *, rounds: int, quick: bool, kind: str = "selftest"
) -> Path:
    """Write the table as JSON to *out*, or to results/<kind>-<UTC time>.json."""
    now = datetime.now(UTC)
    path = out or Path("results") / f"{kind}-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    write_json_atomic(
        path,
        {
            "schema": "mailsla.selftest/1",
            "kind": kind,
            "at": now.isoformat(),
            "rounds": rounds,
            "quick": quick,
            "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
            "versions": versions(),
            "code": code_state(),
            "figures": [f.as_dict() for f in figs],
        },
    )
    return path


def code_state() -> dict[str, Any]:
    """The git commit the measured code is (and whether the checkout had changes), or nulls
    outside a git checkout: which code a saved table describes."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "changed": None}
    if head.returncode != 0:
        return {"commit": None, "changed": None}
    return {"commit": head.stdout.strip(), "changed": bool(dirty.stdout.strip())}
