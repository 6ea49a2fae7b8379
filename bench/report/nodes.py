"""The per-node table of a run on Ray: which node ran which generator actors, what they sent,
how well its clock agrees with the driver's, which actors it lost, and (below it) where the
post office ran, the receive lane's actors and the Maildir watcher. From result.json's
``run.ray``; None for a run on one host."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text


def nodes_table(doc: dict[str, Any]) -> Table | None:
    ray = doc["run"].get("ray")
    if not ray or not ray.get("nodes"):
        return None
    t = Table(
        title=f"Ray nodes ({ray['address']})",
        title_justify="left",
        show_edge=False,
        caption="\n".join(filter(None, (postoffice_line(ray), *more_lines(ray)))),
        caption_justify="left",
    )
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


def postoffice_line(ray: dict[str, Any]) -> str:
    """Where the post office ran: on the driver, or as actors on the nodes named."""
    po = ray.get("postoffice") or {"where": "driver"}
    actors = po.get("actors")
    if not actors:
        return "post office: on the driver (this host)"
    where = sorted({f"{a['ip']} ({a['node_id'][:8]}):{a['port']}" for a in actors})
    line = f"post office: {len(actors)} actor(s) on {', '.join(where)}"
    if po.get("lost"):
        line += f"; lost mid-run: actor(s) {', '.join(map(str, po['lost']))}"
    return line


def more_lines(ray: dict[str, Any]) -> list[str]:
    """With both lanes, the receive lane's actors (the table is the send lane's); with
    ``--ray-watcher``, where the Maildir watcher ran."""
    out = []
    inbound = ray.get("inbound")
    if inbound:
        nodes = inbound.get("nodes", [])
        where = ", ".join(f"{n['ip']} ({n['node_id'][:8]})" for n in nodes)
        sent = sum(n.get("counts", {}).get("accepted", 0) for n in nodes)
        line = f"inbound: {inbound['actors']} actor(s) on {where}, {sent} accepted"
        lost = [d["worker"] for d in inbound.get("lost", [])]
        out.append(line + (f"; lost mid-run: actor(s) {', '.join(map(str, lost))}" if lost else ""))
    w = ray.get("watcher")
    if w:
        line = f"Maildir watcher: an actor on {w['ip']} ({w['node_id'][:8]})"
        out.append(line + ("; lost mid-run" if w.get("lost") else ""))
    return out


def _clock(node: dict[str, Any]) -> Text:
    clock = node.get("clock")
    if clock is None:
        return Text("not measured", "yellow")
    if node.get("same_clock_as_driver"):
        return Text("the driver's (same host)")
    text = f"{clock['offset_ms']:+.3f} ms ± {clock['uncertainty_ms']:.3f}"
    style = {"ok": "", "warn": "yellow", "refuse": "bold red"}[clock["verdict"]]
    return Text(text, style)
