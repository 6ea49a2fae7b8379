"""A local generator worker process killed mid-run: the run finishes, says which worker died
and its share, and every message is in the books (as with a lost Ray actor); its latency
samples survive as of its last histograms (sent once a second)."""

from __future__ import annotations

import asyncio
import os
import signal
import tomllib
from pathlib import Path

import pytest

from bench.config.scenario import from_dict
from bench.procs.parent import GeneratorFleet
from bench.run.runner import Runner

SCENARIO = """
name = "lost"
seed = 5
[fakemta]
processing_delay = "uniform(1ms, 5ms)"
[load]
rate = 100
duration = "3s"
drain = "5s"
sessions = 4
workers = 2
"""


@pytest.mark.slow
async def test_a_killed_worker_process_is_booked_with_its_share(tmp_path: Path) -> None:
    sc = from_dict(tomllib.loads(SCENARIO), "lost.toml")
    runner = Runner(sc, tmp_path / "out", None)
    task = asyncio.ensure_future(runner.run())
    async with asyncio.timeout(30):  # until worker 1 has reported its histograms
        while True:
            fleet = runner.lanes[0].generator
            if isinstance(fleet, GeneratorFleet) and fleet.reported_metrics(1):
                break
            await asyncio.sleep(0.05)
    pid = fleet.workers[1].proc.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    # what it had reported by the kill (a later snapshot may still be in the pipe: >=)
    snap = {m.name: m.count for m in fleet.reported_metrics(1)}
    assert snap["submit_latency"] > 0
    res = await asyncio.wait_for(task, 60)
    assert res.status == "aborted"
    assert "1 generator worker(s) died mid-run (generator worker 1 on this host" in (
        res.reason or ""
    )
    c = res.doc["counts"]
    assert c["planned"] == 300 and res.doc["accounting"]["holds"] is True
    assert c["not_sent"] > 0
    assert fleet.lost[0]["share"] == 150
    survivor = fleet.ended[0]["accepted"]
    kept = res.doc["metrics"]["submit_latency"]["count"]
    assert survivor + snap["submit_latency"] <= kept <= c["accepted"]
    assert kept > survivor  # the dead worker's samples are in, not lost with it
