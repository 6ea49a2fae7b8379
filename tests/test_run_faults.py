"""End to end: the system under test dies and comes back; availability reports the gap."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.test_run import MAILSLA, ROOT, assert_accounted, result, scenario

pytestmark = pytest.mark.slow


def _fakemta(port: int, po_port: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [
            *MAILSLA,
            "fakemta",
            "--listen",
            f"127.0.0.1:{port}",
            "--relay-to",
            f"127.0.0.1:{po_port}",
            "--processing-delay",
            "const(300ms)",  # a kill always finds accepted mail still held
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    for _ in range(10):
        line = proc.stdout.readline()
        if line.startswith("{"):
            return proc, json.loads(line)
    proc.kill()
    raise AssertionError("fakemta did not start")


def test_fakemta_killed_and_restarted_mid_run(tmp_path: Path) -> None:
    port, po_port = free_port(), free_port()
    text = f"""
name = "kill"
seed = 2
[system]
kind = "smtp"
submit = "127.0.0.1:{port}"
[postoffice]
listen = "127.0.0.1:{po_port}"
[load]
rate = 100
duration = "9s"
drain = "5s"
sessions = 4
timeout = "2s"
[sla]
availability_window = "1s"
"""
    mta, _ = _fakemta(port, po_port)
    out = tmp_path / "out"
    run = subprocess.Popen(
        [*MAILSLA, "run", str(scenario(tmp_path, text)), "--no-live", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        assert run.stderr is not None
        assert "submitting to" in run.stderr.readline()
        time.sleep(3)
        mta.send_signal(signal.SIGKILL)
        mta.wait(10)
        time.sleep(2)  # the gap
        mta, _ = _fakemta(port, po_port)
        _, err = run.communicate(timeout=60)
    finally:
        run.kill()
        mta.send_signal(signal.SIGINT)
        mta.communicate(timeout=20)
    doc = result(out)
    assert doc["run"]["status"] == "completed", err  # mailsla kept running
    assert_accounted(doc)
    c = doc["counts"]
    assert c["planned"] == 900 and c["failed"] > 50, c
    assert c["delivered"] > 500, c
    a = doc["availability"]
    assert a["fault_windows"] >= 2 and a["connectivity_fault_windows"] >= 2, a
    (outage,) = [o for o in a["outages"] if o["end_s"] - o["begin_s"] >= 2]
    assert outage["kind"] == "connection"
    assert 2 <= outage["begin_s"] <= 4 and 4 <= outage["end_s"] <= 8, outage
    # What the killed MTA had accepted but not relayed is lost, and said so.
    assert a["accepted_then_lost"] == c["undelivered"] > 0
    checks = {ch["name"]: ch for ch in doc["sla"]["checks"]}
    assert not checks["availability.no_fault_rate"]["pass"]
    assert not checks["availability.connectivity_rate"]["pass"]
    assert run.returncode == 1  # a failed check, not a failed run
