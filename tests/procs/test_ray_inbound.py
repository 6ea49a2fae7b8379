"""Inbound mail on a real local Ray cluster (tests/procs/conftest.py): both lanes' generators
as actors, the Maildir watcher as an actor on a chosen node (``--ray-watcher``), arrivals
joined to their sends by id across nodes; a watcher actor killed mid-run; the CLI."""

from __future__ import annotations

import asyncio
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench.config.scenario import from_dict
from bench.procs.ray_connect import connect
from bench.procs.ray_fleet import RayPlan
from bench.procs.ray_watcher import watcher_node
from bench.run.runner import Runner
from bench.run.wiring import ray_placement
from tests.e2e.test_run import mailsla
from tests.procs.conftest import need_ray

SCENARIO = """
name = "ray-in"
seed = 7
[fakemta]
delivery_delay = "const(50ms)"
[load]
direction = "{direction}"
receive_share = 0.25
rate = 100
duration = "{duration}"
drain = "{drain}"
sessions = 8
[message]
size = "1KiB"
users = 10
[mailbox]
maildir = "{maildir}"
"""

pytestmark = pytest.mark.slow


def scenario(
    tmp_path: Path, direction: str = "both", duration: str = "2s", drain: str = "5s"
) -> Any:
    mail = tmp_path / "mail"
    mail.mkdir(parents=True, exist_ok=True)
    text = SCENARIO.format(direction=direction, duration=duration, drain=drain, maildir=mail)
    return from_dict(tomllib.loads(text), "ray-in.toml")


def accounted(doc: dict[str, Any]) -> None:
    for lane in doc["directions"].values():
        c = lane["counts"]
        settled = c["delivered"] + c["undelivered"] + c["in_flight_at_stop"]
        assert c["planned"] == c["not_sent"] + c["rejected"] + c["failed"] + settled
        assert c["accepted"] == settled
        assert lane["identity_holds"] is True
    assert doc["accounting"]["holds"] is True


def plan(cluster: str, sc: Any, watcher: str) -> RayPlan:
    nodes = connect(cluster)
    return RayPlan(
        cluster,
        ray_placement(nodes, "auto", sc.load.sessions),
        watcher_where=watcher,
        watcher=watcher_node(nodes, watcher),
    )


async def test_both_lanes_on_actors_with_the_watcher_on_a_chosen_node(
    cluster: str, tmp_path: Path
) -> None:
    """Both lanes split over actors on both nodes; the Maildirs read by an actor on the worker
    node; counts and delays equal a local run's (the same schedule, the fake MTA's 50 ms)."""
    sc = scenario(tmp_path)
    chosen = connect(cluster)[1]
    p = plan(cluster, sc, chosen.node_id[:10])
    on_ray = await Runner(sc, tmp_path / "ray", None, ray=p).run()
    assert on_ray.status == "completed", on_ray.reason
    local = await Runner(scenario(tmp_path / "l"), tmp_path / "local", None).run()
    assert local.status == "completed", local.reason
    r, lo = on_ray.doc, local.doc
    accounted(r)
    for doc in (r, lo):  # a constant schedule: 150 out, 50 in, all delivered, both ways
        assert doc["directions"]["send"]["counts"]["delivered"] == 150
        assert doc["directions"]["receive"]["counts"]["delivered"] == 50
        assert doc["metrics"]["receive_delay"]["count"] == 50
        assert doc["metrics"]["inbound.submit_latency"]["count"] == 50
        assert doc["counts"]["foreign"] == 0
    a, b = (d["metrics"]["receive_delay"]["percentiles_s"]["50"] for d in (r, lo))
    assert 0.05 <= a < 0.08 and abs(a - b) < 0.015, (a, b)  # the fake MTA's hold, either way
    ray = r["run"]["ray"]
    # the send lane: its 6 sessions over both nodes; the receive lane: its 2 likewise
    assert ray["actors"] == 2 and ray["inbound"]["actors"] == 2
    assert sum(n["counts"]["accepted"] for n in ray["inbound"]["nodes"]) == 50
    assert sum(s for n in ray["inbound"]["nodes"] for s in n["shares"]) == 50
    w = ray["watcher"]
    assert w["node_id"] == chosen.node_id and w["where"] == chosen.node_id[:10]
    assert w["same_clock_as_driver"] is True and w["clock"]["probes"] == 16
    assert w["lost"] is False and w["warnings"] == []
    rec = r["receive"]
    assert rec["mode"] == "inotify" and rec["stats"]["seen"] == 50  # the actor's own counts
    assert rec["maildir"] == str(tmp_path / "mail")


async def test_a_watcher_actor_killed_mid_run_is_reported(cluster: str, tmp_path: Path) -> None:
    """Inbound only, the watcher killed once mail is seen: the run ends aborted naming it, what
    it had reported stays delivered, the rest is undelivered, and every message is accounted."""
    ray = need_ray()
    sc = scenario(tmp_path, direction="receive", duration="3s", drain="2s")
    p = plan(cluster, sc, connect(cluster)[1].node_id)
    runner = Runner(sc, tmp_path / "kill", None, ray=p)
    task = asyncio.ensure_future(runner.run())
    lane = runner.by_dir["receive"]
    async with asyncio.timeout(60):  # until mail has been seen
        while lane.corr.counts.delivered < 20:  # noqa: ASYNC110 (no event: another process)
            await asyncio.sleep(0.05)
    assert p.watcher_actor is not None and p.watcher_actor.worker is not None
    ray.kill(p.watcher_actor.worker.handle)
    res = await asyncio.wait_for(task, 90)
    doc = res.doc
    assert res.status == "aborted" and "watcher actor" in (res.reason or "")
    assert doc["run"]["ray"]["watcher"]["lost"] is True
    accounted(doc)
    c = doc["directions"]["receive"]["counts"]
    assert c["planned"] == 300 and c["delivered"] >= 20 and c["undelivered"] > 0


def test_mailsla_run_ray_watcher_end_to_end(cluster: str, tmp_path: Path) -> None:
    sc = scenario(tmp_path, direction="receive")
    path = tmp_path / "s.toml"
    path.write_text(
        SCENARIO.format(direction="receive", duration="2s", drain="5s", maildir=tmp_path / "mail")
    )
    node = connect(cluster)[1]
    out = tmp_path / "out"
    on_ray = ["--ray", cluster, "--ray-watcher", node.node_id[:12]]
    p = mailsla("run", str(path), "--no-live", "--out", str(out), *on_ray)
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "result.json").read_text())
    accounted(doc)
    assert doc["counts"]["delivered"] == sc.load.rate * 2
    assert doc["run"]["ray"]["watcher"]["node_id"] == node.node_id
    assert f"Maildir watcher: an actor on 127.0.0.1 ({node.node_id[:8]})" in p.stdout
