"""capacity.json (schema ``mailsla.capacity/1``): the rates found, every step and every
confirmation, written atomically after each step, so that a search cut short (budget, Ctrl-C,
an error) still leaves a whole document with the best rate proven so far."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.capacity.search import Found
from bench.run.results import write_json_atomic

SCHEMA = "mailsla.capacity/1"
FILE = "capacity.json"


def capacity_section(found: Found, precision: float) -> dict[str, Any]:
    """``capacity``: the sustainable rate (msgs/s and a minute), the no-fault rate, and the
    first signal that failed above each."""
    rate, nf = found.sustainable, found.no_fault
    return {
        "sustainable_rate": rate,
        "per_minute": round(rate * 60, 1) if rate is not None else None,
        "no_fault_rate": nf,
        "no_fault_per_minute": round(nf * 60, 1) if nf is not None else None,
        "failed_by": found.failed_by,
        "no_fault_failed_by": found.no_fault_failed_by,
        "lowest_failing_rate": found.lowest_failing,
        "precision": precision,
        "search_done": found.done,
        "search_end": found.reason,
    }


def confirmed_rate(confirm: list[dict[str, Any]]) -> float | None:
    """The highest rate at or below the one found that also held for a confirmation's longer
    run (100 %, else 80 %): what a search whose 100 % confirmation failed still proved. None
    when neither held (or none ran)."""
    held = [c["rate"] for c in confirm if c.get("share", 2) <= 1.0 and c["verdict"] == "pass"]
    return max(held) if held else None


def build(
    *,
    head: dict[str, Any],
    found: Found,
    precision: float,
    steps: list[dict[str, Any]],
    confirm: list[dict[str, Any]],
    status: str,
    reason: str | None,
    wall_s: float,
    population: dict[str, Any] | None,
) -> dict[str, Any]:
    """The whole document. *status*: "completed", "cut_short" or "error"."""
    cap = capacity_section(found, precision)
    shown = [c for c in confirm if c.get("share") == 1.0]
    cap["confirmed"] = shown[0]["verdict"] == "pass" if shown else None
    cap["confirmed_rate"] = confirmed_rate(confirm)
    return {
        "schema": SCHEMA,
        **head,
        "status": status,
        "cut_short": status != "completed",
        "reason": reason,
        "wall_s": round(wall_s, 3),
        "capacity": cap,
        "population": population,
        "steps": steps,
        "confirm": confirm,
    }


def write(folder: Path, doc: dict[str, Any]) -> Path:
    """Write capacity.json into *folder*, atomically; its path."""
    path = folder / FILE
    write_json_atomic(path, doc)
    return path
