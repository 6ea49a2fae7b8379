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
from tests.e2e.test_run import MAILSLA, ROOT, assert_accounted, result, run_scenario, scenario

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


def _run(tmp_path: Path, path: Path, *sets: str) -> tuple[int, dict[str, Any]]:
    p, out = run_scenario(tmp_path, path, *sets)
    return p.returncode, result(out)


def test_outage_scenario_scaled_down(tmp_path: Path) -> None:
    """scenarios/outage.toml with its times divided by six: 30 s, an outage at 10 s for 5 s,
    10-second windows."""
    code, doc = _run(
        tmp_path,
        ROOT / "scenarios" / "outage.toml",
        'load.duration="30s"',
        'load.drain="5s"',
        'sla.availability_window="10s"',
        'fakemta.outages=[{at="10s", for="5s", kind="refuse"}]',
    )
    assert code == 1
    a = doc["availability"]
    assert a["windows"] == 3 and 1 <= a["fault_windows"] <= 2, a
    assert a["connectivity_fault_windows"] == a["fault_windows"]
    (o,) = a["outages"]
    assert 9 <= o["begin_s"] <= 11 and 14 <= o["end_s"] <= 16 and o["kind"] == "connection", o
    failed = {c["name"] for c in doc["sla"]["checks"] if not c["pass"]}
    assert failed == {"availability.no_fault_rate", "availability.connectivity_rate"}
    # The crash refuses new connections; a send caught on a connection at the instant it was
    # dropped (in flight, or written before the reset was read) fails at its own stage: at
    # most one per session, and only as a reset or disconnect.
    failures = doc["outcomes"]["failed"]
    assert "connect" in {f["stage"] for f in failures}, failures
    caught = [f for f in failures if f["stage"] != "connect"]
    assert sum(f["count"] for f in caught) <= 10, failures  # load.sessions
    assert all(f["error"] in ("reset", "disconnected") for f in caught), failures
    assert doc["fakemta"]["outages"], doc["fakemta"]
    assert_accounted(doc)


def _within(observed: int, n: int, p: float) -> None:
    """*observed* of *n* is within 4 standard deviations of a binomial(n, p)."""
    sd = (n * p * (1 - p)) ** 0.5
    assert abs(observed - n * p) <= 4 * sd + 1, (observed, n, p)


def test_flaky_scenario_shares_match_the_probabilities(tmp_path: Path) -> None:
    code, doc = _run(tmp_path, ROOT / "scenarios" / "flaky.toml", 'load.duration="10s"')
    assert code == 1  # faults on purpose: the availability checks fail
    assert_accounted(doc)
    rej: dict[str, int] = {}
    for r in doc["outcomes"]["rejected"]:
        rej[f"{r['stage']}.{r['code']}"] = rej.get(f"{r['stage']}.{r['code']}", 0) + r["count"]
    fail: dict[str, int] = {}
    for f in doc["outcomes"]["failed"]:
        fail[f"{f['stage']}.{f['error']}"] = fail.get(f"{f['stage']}.{f['error']}", 0) + f["count"]
    assert set(rej) <= {"banner.421", "mail.451", "rcpt.550", "dot.451"}, rej
    assert set(fail) <= {"rcpt.disconnected"}, fail
    connects = doc["metrics"]["stage.connect"]["count"]
    _within(rej.get("banner.421", 0), connects, 0.05)
    # Each later stage: the share of the messages that reached it.
    at_mail = doc["counts"]["sent"] - rej.get("banner.421", 0)
    _within(rej["mail.451"], at_mail, 0.02)
    at_rcpt = at_mail - rej["mail.451"]
    _within(rej["rcpt.550"], at_rcpt, 0.02)
    _within(fail["rcpt.disconnected"], at_rcpt, 0.01)
    at_dot = at_rcpt - rej["rcpt.550"] - fail["rcpt.disconnected"]
    _within(rej["dot.451"], at_dot, 0.03)
    assert doc["counts"]["accepted"] == at_dot - rej["dot.451"]
    injected = doc["fakemta"]["faults_injected"]
    assert injected.get("dot.delay", 0) > 0, injected


def test_post_office_defers_and_refuses(tmp_path: Path) -> None:
    """The destination defers some mail (the system retries it: a longer send delay) and
    refuses some (the system bounces it: lost, counted)."""
    text = """
name = "po"
seed = 4
[fakemta]
processing_delay = "const(1ms)"
[postoffice]
defer = 0.3
refuse = 0.1
[load]
rate = 100
duration = "2s"
drain = "15s"
sessions = 4
"""
    code, doc = _run(tmp_path, scenario(tmp_path, text))
    assert code == 1  # refused mail is undelivered: over the 1-hour ceiling
    po, mta, c = doc["postoffice"], doc["fakemta"], doc["counts"]
    assert po["deferred"] > 20 and po["refused"] > 5, po
    assert mta["bounced"] == po["refused"] == c["undelivered"], (mta, po, c)
    assert mta["deferred"] == po["deferred"]
    assert c["delivered"] + c["undelivered"] == c["accepted"] == 200
    # A deferred message waits for the relay's retry (0.5 s and up).
    assert doc["metrics"]["send_delay"]["max_s"] >= 0.5
    assert_accounted(doc)
