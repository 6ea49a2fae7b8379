"""The per-node table of a run on Ray: which node ran which generator actors, what they sent,
how well its clock agrees with the driver's, and which actors it lost. From result.json's
``run.ray``; None for a run on one host."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text


def nodes_table(doc: dict[str, Any]) -> Table | None:
    ray = doc["run"].get("ray")
    if not ray or not ray.get("nodes"):
        return None
    t = Table(title=f"Ray nodes ({ray['address']})", title_justify="left", show_edge=False)
    cols = ("node", "actors", "planned", "sent", "accepted", "not sent", "failed", "clock")
    for col in (*cols, "lost"):
        t.add_column(col, justify="left" if col in ("node", "actors", "clock", "lost") else "right")
    for n in ray["nodes"]:
        c = n.get("counts", {})
        t.add_row(
            f"{n['ip']} ({n['node_id'][:8]})",
            ", ".join(map(str, n["generators"])),
            *(str(c.get(k, 0)) for k in ("planned", "sent", "accepted", "not_sent", "failed")),
            _clock(n),
            Text(", ".join(map(str, n.get("lost", []))), "bold red"),
        )
    return t


def _clock(node: dict[str, Any]) -> Text:
    clock = node.get("clock")
    if clock is None:
        return Text("not measured", "yellow")
    if node.get("same_clock_as_driver"):
        return Text("the driver's (same host)")
    text = f"{clock['offset_ms']:+.3f} ms ± {clock['uncertainty_ms']:.3f}"
    style = {"ok": "", "warn": "yellow", "refuse": "bold red"}[clock["verdict"]]
    return Text(text, style)
