"""Runs on a real local Ray cluster (a head and a worker node, both on this machine): the
send lane's generators as Ray actors, against the embedded fake MTA; an actor killed mid-run;
``mailsla run --ray`` end to end. One cluster for the session (tests/procs/conftest.py; it
takes seconds to start). Without Ray installed these are skipped here and fail in CI
(.ci/run installs it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bench.config.scenario import from_dict
from bench.procs.ray_connect import connect
from bench.procs.ray_fleet import RayPlan
from bench.procs.ray_postoffice import postoffice_nodes
from bench.run.runner import Runner
from bench.run.wiring import ray_placement
from tests.procs.conftest import SMALL, need_ray

ROOT = Path(__file__).resolve().parents[2]
MAILSLA = [sys.executable, "-m", "bench"]
SCENARIO = """
name = "ray"
seed = 5
[fakemta]
processing_delay = "uniform(1ms, 5ms)"
[load]
rate = 100
duration = "{duration}"
drain = "5s"
sessions = 4
workers = 2
[sla]
thresholds = ["send_delay.p99 < 5s"]
"""

pytestmark = pytest.mark.slow


def scenario(duration: str = "2s") -> Any:
    return from_dict(tomllib.loads(SCENARIO.format(duration=duration)), "ray.toml")


def accounted(doc: dict[str, Any]) -> None:
    c = doc["counts"]
    settled = c["delivered"] + c["undelivered"] + c["in_flight_at_stop"]
    assert c["planned"] == c["not_sent"] + c["rejected"] + c["failed"] + settled
    assert c["sent"] == c["rejected"] + c["failed"] + c["accepted"]
    assert c["accepted"] == settled
    assert doc["accounting"]["holds"] is True


async def test_ray_run_matches_a_local_run(cluster: str, tmp_path: Path) -> None:
    sc = scenario()
    plan = RayPlan(cluster, ray_placement(connect(cluster), "auto", sc.load.sessions))
    assert len({n.node_id for n in plan.placement}) == 2  # one actor on each node
    on_ray = await Runner(sc, tmp_path / "ray", None, ray=plan).run()
    local = await Runner(sc, tmp_path / "local", None).run()
    assert on_ray.status == "completed", on_ray.reason
    r, lo = on_ray.doc, local.doc
    accounted(r)
    # a constant schedule: the same messages, all delivered, both ways
    assert r["counts"]["planned"] == lo["counts"]["planned"] == 200
    assert r["counts"]["delivered"] == lo["counts"]["delivered"] == 200
    for name in ("submit_latency", "service_time", "send_delay", "delivery_delay"):
        assert r["metrics"][name]["count"] == lo["metrics"][name]["count"] == 200
    # the delays are the fake MTA's (1-5 ms), whoever sends: medians agree within its spread
    for name in ("send_delay", "service_time"):
        a, b = (d["metrics"][name]["percentiles_s"]["50"] for d in (r, lo))
        assert abs(a - b) < 0.01, (name, a, b)
    info = r["run"]["ray"]
    assert info["actors"] == 2 and info["lost"] == []
    assert sorted(g for n in info["nodes"] for g in n["generators"]) == [0, 1]
    assert sum(s for n in info["nodes"] for s in n["shares"]) == 200
    assert sum(n["counts"]["accepted"] for n in info["nodes"]) == 200  # which node sent what
    assert all(n["counts"]["accepted"] > 0 and n["lost"] == [] for n in info["nodes"])
    for node in info["nodes"]:
        clock = node["clock"]
        assert node["ip"] == "127.0.0.1"
        assert node["same_clock_as_driver"] is True  # one machine: one monotonic clock
        assert clock["probes"] == 16 and clock["verdict"] == "ok"
        assert clock["uncertainty_ms"] >= 0 and "drift_ms" in clock
    assert r["run"]["system"]["workers"]["load"] == 2


async def test_an_actor_killed_mid_run_is_reported_with_its_share(
    cluster: str, tmp_path: Path
) -> None:
    ray = need_ray()
    sc = scenario(duration="4s")
    plan = RayPlan(cluster, ray_placement(connect(cluster), "auto", sc.load.sessions))
    runner = Runner(sc, tmp_path / "kill", None, ray=plan)
    task = asyncio.ensure_future(runner.run())
    async with asyncio.timeout(60):  # until actor 1 has reported its histograms
        while plan.fleet is None or not plan.fleet.reported_metrics(1):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    ray.kill(plan.fleet.actors[1].handle)
    snap = {m.name: m.count for m in plan.fleet.reported_metrics(1)}
    res = await asyncio.wait_for(task, 60)
    doc = res.doc
    assert res.status == "aborted" and "generator actor(s) died" in (res.reason or "")
    lost = doc["run"]["ray"]["lost"]
    assert [d["worker"] for d in lost] == [1]
    assert [n["lost"] for n in doc["run"]["ray"]["nodes"] if 1 in n["generators"]] == [[1]]
    assert lost[0]["share"] == 200  # its half of 400 planned sends
    assert lost[0]["not_sent"] > 0  # killed within its share
    accounted(doc)
    c = doc["counts"]
    assert c["planned"] == 400  # every message of the schedule is in the books
    # the survivor sent all of its share; the dead one's unsent rest is "not sent"
    assert c["not_sent"] >= lost[0]["not_sent"]
    # its latency samples as of its last histograms (once a second) are in the result
    survivor = plan.fleet.ended[0]["accepted"]
    kept = doc["metrics"]["submit_latency"]["count"]
    assert snap["submit_latency"] > 0 and survivor + snap["submit_latency"] <= kept
    assert kept <= c["accepted"]


async def test_a_node_lost_mid_run_is_reported_with_its_share(
    ray_cluster: Any, cluster: str, tmp_path: Path
) -> None:
    """A third node joins, gets a generator actor, and is killed (every process of it, its
    raylet included) mid-run: the run ends aborted naming its actor and share, and every
    message is accounted for."""
    extra = ray_cluster.add_node(**SMALL)
    try:
        ray_cluster.wait_for_nodes()
        nodes = connect(cluster)
        assert extra.node_id in {n.node_id for n in nodes} and len(nodes) == 3
        sc = scenario(duration="4s")
        plan = RayPlan(cluster, ray_placement(nodes, "auto", sc.load.sessions))
        (k,) = [i for i, n in enumerate(plan.placement) if n.node_id == extra.node_id]
        runner = Runner(sc, tmp_path / "node", None, ray=plan)
        task = asyncio.ensure_future(runner.run())
        async with asyncio.timeout(60):  # until its actor has sent mail and its histograms
            while plan.fleet is None or not plan.fleet.reported_metrics(k):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, ray_cluster.remove_node, extra, False)
        extra = None
        res = await asyncio.wait_for(task, 90)
    finally:
        if extra is not None:
            ray_cluster.remove_node(extra, False)
    doc = res.doc
    assert res.status == "aborted" and "generator actor(s) died" in (res.reason or "")
    lost = doc["run"]["ray"]["lost"]
    assert [d["worker"] for d in lost] == [k] and lost[0]["share"] == len(range(k, 400, 3))
    assert lost[0]["not_sent"] > 0  # killed within its share
    accounted(doc)
    assert doc["counts"]["planned"] == 400
    async with asyncio.timeout(60):  # the session's cluster as it was, once Ray knows
        while len(connect(cluster)) != 2:  # noqa: ASYNC110 (the GCS's health checks)
            await asyncio.sleep(0.2)


async def test_the_post_office_as_actors_on_a_chosen_node(cluster: str, tmp_path: Path) -> None:
    """--ray-postoffice NODE: two post office actors (postoffice.workers) on the worker node,
    one port; every arrival joined to its submission by id, whichever node sent it."""
    nodes = connect(cluster)
    sc = scenario()
    sc = sc.model_copy(update={"postoffice": sc.postoffice.model_copy(update={"workers": 2})})
    chosen = nodes[1]
    plan = RayPlan(
        cluster,
        ray_placement(nodes, "auto", sc.load.sessions),
        postoffice_where=chosen.node_id[:10],
        postoffice=postoffice_nodes(nodes, chosen.node_id[:10]),
    )
    res = await Runner(sc, tmp_path / "po", None, ray=plan).run()
    assert res.status == "completed", res.reason
    doc = res.doc
    accounted(doc)
    assert doc["counts"]["delivered"] == 200 and doc["counts"]["foreign"] == 0
    assert doc["metrics"]["send_delay"]["count"] == 200
    po = doc["run"]["ray"]["postoffice"]
    assert po["where"] == chosen.node_id[:10] and po["lost"] == []
    assert [a["node_id"] for a in po["actors"]] == [chosen.node_id] * 2
    port = po["actors"][0]["port"]
    assert port > 0 and {a["port"] for a in po["actors"]} == {port}
    assert doc["run"]["system"]["postoffice"] == f"127.0.0.1:{port}"
    (node,) = po["nodes"]
    assert node["same_clock_as_driver"] is True and node["clock"]["probes"] == 16
    assert po["warnings"] == [] and doc["run"]["ray"]["warnings"] == []  # one host: one clock


async def test_a_post_office_actor_killed_mid_run_is_reported(cluster: str, tmp_path: Path) -> None:
    """--ray-postoffice each, one actor a node on one port: one killed mid-run, the fake MTA
    relays to the other; the run ends aborted naming it, and every message is accounted for
    (what the dead one took after its last batch is undelivered)."""
    ray = need_ray()
    nodes = connect(cluster)
    sc = scenario(duration="4s")
    plan = RayPlan(
        cluster,
        ray_placement(nodes, "auto", sc.load.sessions),
        postoffice_where="each",
        postoffice=postoffice_nodes(nodes, "each"),
    )
    runner = Runner(sc, tmp_path / "pokill", None, ray=plan)
    task = asyncio.ensure_future(runner.run())
    async with asyncio.timeout(60):  # until mail has arrived
        while runner.corr.counts.delivered < 20:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    ray.kill(plan.postoffice_fleet.placed[0].worker.handle)
    res = await asyncio.wait_for(task, 90)
    doc = res.doc
    assert res.status == "aborted" and "post office actor(s) died" in (res.reason or "")
    assert doc["run"]["ray"]["postoffice"]["lost"] == [0]
    accounted(doc)
    c = doc["counts"]
    assert c["planned"] == 400 and c["delivered"] > 20  # the survivor took the rest


def test_mailsla_run_ray_end_to_end(cluster: str, tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(duration="2s"))
    out = tmp_path / "out"
    p = subprocess.run(
        [
            *MAILSLA,
            "run",
            str(path),
            "--no-live",
            "--out",
            str(out),
            "--ray",
            cluster,
            "--ray-postoffice",
            "each",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "result.json").read_text())
    accounted(doc)
    assert doc["counts"]["delivered"] == 200
    assert len(doc["run"]["ray"]["nodes"]) == 2
    assert "Ray nodes" in p.stdout  # the per-node table
    for node in doc["run"]["ray"]["nodes"]:
        assert node["ip"] in p.stdout
    assert doc["run"]["ray"]["address"] == cluster
    # one post office actor on each node, named under the table
    assert [a["actor"] for a in doc["run"]["ray"]["postoffice"]["actors"]] == [0, 1]
    assert "post office: 2 actor(s) on 127.0.0.1" in p.stdout


def test_without_ray_run_ray_says_how_to_get_it(tmp_path: Path) -> None:
    shim = tmp_path / "shim" / "ray"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('no ray here (test)')\n")
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(duration="1s"))
    env = {**os.environ, "PYTHONPATH": f"{shim.parent}:{ROOT}"}
    p = subprocess.run(
        [*MAILSLA, "run", str(path), "--no-live", "--ray", "auto"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
        env=env,
    )
    assert p.returncode == 2, p.stderr
    assert "pip install 'mailsla[ray]'" in p.stderr and "make ray" in p.stderr
    assert "Traceback" not in p.stderr


def run_on_ray(path: Path, address: str) -> subprocess.CompletedProcess[str]:
    """``mailsla run SCENARIO --ray ADDRESS``, bounded."""
    return subprocess.run(
        [*MAILSLA, "run", str(path), "--no-live", "--ray", address],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_an_address_where_nothing_answers_exits_2_at_once(tmp_path: Path) -> None:
    need_ray()
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(duration="1s"))
    with socket.socket() as s:  # a port that takes no connection: bound, never listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        p = run_on_ray(path, f"127.0.0.1:{port}")
    assert p.returncode == 2, p.stderr
    assert "nothing answers there" in p.stderr and "ray start --head" in p.stderr


def test_an_address_that_takes_tcp_but_is_not_ray_exits_2_in_bounded_time(
    tmp_path: Path,
) -> None:
    need_ray()
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(duration="1s"))
    accepted = threading.Event()
    with socket.create_server(("127.0.0.1", 0)) as srv:  # takes connections, says nothing
        port = srv.getsockname()[1]
        held: list[socket.socket] = []

        def take() -> None:
            with contextlib.suppress(OSError):
                while True:
                    held.append(srv.accept()[0])
                    accepted.set()

        threading.Thread(target=take, daemon=True).start()
        began = time.monotonic()
        p = run_on_ray(path, f"127.0.0.1:{port}")
        took = time.monotonic() - began
        for conn in held:
            conn.close()
    assert accepted.is_set()  # it did connect: the TCP check passed, the Ray check did not
    assert p.returncode == 2, p.stderr
    assert "not a Ray head" in p.stderr and "ray start --head" in p.stderr
    assert "Traceback" not in p.stderr
    assert took < 40  # bounded (ray.init alone waits for minutes)


def test_ctrl_c_while_waiting_for_a_head_exits_3_not_1(tmp_path: Path) -> None:
    """Ctrl-C while mailsla waits on an address that takes connections and says nothing:
    an interruption (exit 3), not a verdict (Click's own handling would exit 1)."""
    need_ray()
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO.format(duration="1s"))
    with socket.create_server(("127.0.0.1", 0)) as srv:  # takes connections, says nothing
        accepted = threading.Event()

        def take() -> None:
            with contextlib.suppress(OSError):
                conn = srv.accept()[0]
                accepted.set()
                conn.recv(1)  # held open until the client goes

        threading.Thread(target=take, daemon=True).start()
        cmd = [
            *MAILSLA,
            "run",
            str(path),
            "--no-live",
            "--ray",
            f"127.0.0.1:{srv.getsockname()[1]}",
        ]
        p = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert accepted.wait(30)  # it is waiting for the GCS's reply
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 3, err
    assert "interrupted (SIGINT)" in err and "Traceback" not in err
