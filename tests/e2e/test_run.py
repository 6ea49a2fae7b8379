"""mailsla run, end to end through the CLI: real processes, real sockets, result.json."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.config.scenario import load as load_scenario
from bench.run.runner import Runner
from tests.conftest import free_port

MAILSLA = [sys.executable, "-m", "bench"]
ROOT = Path(__file__).resolve().parents[2]
QUICK = """
name = "t"
seed = 3
[fakemta]
processing_delay = "uniform(1ms, 5ms)"
[load]
rate = 100
duration = "2s"
drain = "5s"
sessions = 4
[sla]
thresholds = ["send_delay.p99 < 5s"]
"""


def scenario(tmp_path: Path, text: str = QUICK) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def mailsla(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAILSLA, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
        env={**os.environ, **env} if env else None,
    )


def run_scenario(
    tmp_path: Path, source: str | Path, *sets: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``mailsla run`` of a scenario (TOML text, or a file) with ``--set``s; results in
    ``tmp_path/out``."""
    path = source if isinstance(source, Path) else scenario(tmp_path, source)
    out = tmp_path / "out"
    overrides = [arg for s in sets for arg in ("--set", s)]
    p = mailsla("run", str(path), "--no-live", "--out", str(out), *overrides, timeout=180, env=env)
    return p, out


def result(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "result.json").read_text())
    return doc


def assert_accounted(doc: dict[str, Any]) -> None:
    c = doc["counts"]
    settled = c["delivered"] + c["undelivered"] + c.get("in_flight_at_stop", 0)
    assert c["planned"] == c["not_sent"] + c["rejected"] + c["failed"] + settled
    assert c["sent"] == c["rejected"] + c["failed"] + c["accepted"]
    assert c["accepted"] == settled
    assert doc["accounting"]["holds"] is True


@pytest.mark.slow
def test_run_passes_and_writes_the_documented_result(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = mailsla("run", str(scenario(tmp_path)), "--no-live", "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = result(out)
    assert doc["schema"] == "mailsla.result/1"
    assert {"schema", "run", "counts", "metrics", "sla"} <= set(doc)
    assert {"id", "scenario", "seed", "started_at", "ended_at", "versions"} <= set(doc["run"])
    assert doc["run"]["seed"] == 3 and doc["run"]["scenario"]["load"]["rate"] == 100
    assert {
        "planned",
        "sent",
        "accepted",
        "rejected",
        "failed",
        "delivered",
        "undelivered",
        "foreign",
        "duplicate",
    } <= set(doc["counts"])
    c = doc["counts"]
    assert c["planned"] == 200 and c["delivered"] == 200 and c["foreign"] == 0
    assert_accounted(doc)
    for name in ("submit_latency", "service_time", "schedule_lag", "send_delay", "delivery_delay"):
        m = doc["metrics"][name]
        assert {"count", "mean_s", "min_s", "max_s", "percentiles_s", "hdr"} <= set(m)
        assert set(m["percentiles_s"]) == {"50", "90", "99", "99.9"}
    sd = doc["metrics"]["send_delay"]
    assert sd["count"] == 200 and 0.0005 < sd["mean_s"] < 1.0
    assert doc["sla"]["verdict"] == "pass"
    names = [c["name"] for c in doc["sla"]["checks"]]
    assert names == [
        "send_delay.mean",
        "send_delay.max",
        "availability.no_fault_rate",
        "availability.connectivity_rate",
        "send_delay.p99",
    ]
    assert doc["availability"]["no_fault_rate"] == 1.0
    assert doc["availability"]["outages"] == []
    assert all(
        {"name", "op", "limit", "observed", "pass"} <= set(ch) for ch in doc["sla"]["checks"]
    )
    assert "SLA checks: PASS" in p.stdout
    assert "results in" in p.stderr
    assert "send_delay p99" in p.stderr  # the progress line's window over the last seconds


@pytest.mark.slow
def test_failed_threshold_exits_1_and_still_writes_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = mailsla(
        "run",
        str(scenario(tmp_path)),
        "--no-live",
        "--out",
        str(out),
        "--set",
        'sla.thresholds=["send_delay.max < 1us"]',
        "--set",
        'load.duration="1s"',
    )
    assert p.returncode == 1, p.stderr
    doc = result(out)
    assert doc["sla"]["verdict"] == "fail"
    bad = [c for c in doc["sla"]["checks"] if not c["pass"]]
    assert [c["name"] for c in bad] == ["send_delay.max"]
    assert bad[0]["observed"] > bad[0]["limit"] == 1e-6


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("load.rate=-5", "load.rate"),
        ('load.duration="ten"', "load.duration"),
        ("load.rrate=5", "load.rrate"),
        ('sla.thresholds=["send_delay.p99 <"]', "sla.thresholds[0]"),
        ('fakemta.processing_delay="normal(1s)"', "fakemta.processing_delay"),
    ],
)
def test_bad_scenario_exits_2_with_one_clear_line(
    tmp_path: Path, override: str, field: str
) -> None:
    path = scenario(tmp_path)
    p = mailsla("run", str(path), "--no-live", "--out", str(tmp_path / "o"), "--set", override)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr + p.stdout
    first = p.stderr.strip().splitlines()[0]
    assert str(path) in first and f": {field}: " in first, first
    assert not (tmp_path / "o").exists()


def test_validate(tmp_path: Path) -> None:
    p = mailsla("validate", "scenarios/quickstart.toml")
    assert p.returncode == 0 and "ok:" in p.stdout
    bad = scenario(tmp_path, "name = 'x'\n[load]\nrate = 'fast'\n")
    p = mailsla("validate", str(bad))
    assert p.returncode == 2 and "load.rate" in p.stderr and "Traceback" not in p.stderr
    p = mailsla("validate", str(tmp_path / "missing.toml"))
    assert p.returncode == 2 and "cannot read" in p.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("name = \n")
    p = mailsla("validate", str(broken))
    assert p.returncode == 2 and "not valid TOML" in p.stderr


def test_refused_everywhere_exits_3_with_partial_results(tmp_path: Path) -> None:
    text = (
        QUICK
        + f"""
[system]
kind = "smtp"
submit = "127.0.0.1:{free_port()}"
[postoffice]
listen = "127.0.0.1:{free_port()}"
"""
    )
    out = tmp_path / "out"
    p = mailsla("run", str(scenario(tmp_path, text)), "--no-live", "--out", str(out))
    assert p.returncode == 3, p.stderr
    assert "became usable" in p.stderr and "connect: refused" in p.stderr
    assert "Traceback" not in p.stderr
    doc = result(out)
    assert doc["run"]["status"] == "aborted"
    assert doc["counts"]["failed"] >= 1 and doc["counts"]["accepted"] == 0
    assert doc["outcomes"]["failed"][0]["stage"] == "connect"
    assert doc["outcomes"]["failed"][0]["error"] == "refused"
    assert_accounted(doc)


@pytest.mark.slow
def test_sigint_stops_the_run_exit_3_with_results(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            *MAILSLA,
            "run",
            str(scenario(tmp_path)),
            "--no-live",
            "--out",
            str(out),
            "--set",
            'load.duration="60s"',
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # "mailsla: run …": the system is up, sending begins
    assert "submitting to" in line, line
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    assert "interrupted" in stderr
    doc = result(out)
    assert doc["run"]["status"] == "interrupted"
    assert doc["counts"]["not_sent"] > 0
    assert_accounted(doc)


@pytest.mark.slow
def test_smtp_kind_against_a_separate_fakemta_process(tmp_path: Path) -> None:
    po_port = free_port()
    mta = subprocess.Popen(
        [
            *MAILSLA,
            "fakemta",
            "--relay-to",
            f"127.0.0.1:{po_port}",
            "--processing-delay",
            "const(20ms)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert mta.stdout is not None
        mta.stdout.readline()
        submit = json.loads(mta.stdout.readline())["submit"]
        text = (
            QUICK
            + f"""
[system]
kind = "smtp"
submit = "{submit}"
[postoffice]
listen = "127.0.0.1:{po_port}"
"""
        )
        out = tmp_path / "out"
        p = mailsla("run", str(scenario(tmp_path, text)), "--no-live", "--out", str(out))
        assert p.returncode == 0, p.stderr
        doc = result(out)
        assert doc["counts"]["delivered"] == 200
        # send_delay starts when this process *reads* the 250, which comes after the fake MTA
        # began the 20 ms hold; on a loaded machine that read can lag by a millisecond or
        # more (CI saw a minimum of 18.4 ms), so the minimum is no lower bound on the hold.
        # The median is; a message relayed unheld would show about 1 ms. That no hold ended
        # early is checked per message on the fake MTA's own clock, below (released_early).
        sd = doc["metrics"]["send_delay"]
        assert sd["percentiles_s"]["50"] >= 0.019, sd
        assert sd["min_s"] >= 0.005, sd
        assert doc["run"]["system"]["submit"] == submit
    finally:
        mta.send_signal(signal.SIGINT)
        out_, _ = mta.communicate(timeout=20)
    assert mta.returncode == 0
    assert '"relayed": 200' in out_
    # every hold lasted its 20 ms, on the fake MTA's own clock (no lag of a reader in it)
    assert '"released_early": 0' in out_, out_


@pytest.mark.slow
def test_const_delay_is_measured_within_2_percent(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = mailsla(
        "run",
        "scenarios/quickstart.toml",
        "--no-live",
        "--out",
        str(out),
        "--set",
        'fakemta.processing_delay="const(200ms)"',
        "--set",
        'load.duration="5s"',
    )
    assert p.returncode == 0, p.stderr
    doc = result(out)
    assert abs(doc["metrics"]["send_delay"]["mean_s"] - 0.200) <= 0.004
    assert_accounted(doc)
    assert doc["counts"]["undelivered"] == 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "extra", "planned"),
    [
        ("poisson", [], None),
        ("steps", ['load.steps=[{rate=50, duration="1s"}, {rate=150, duration="1s"}]'], 200),
        ("closed", ['load.think_time="20ms"', "load.sessions=2"], None),
    ],
)
def test_each_load_model_runs_and_accounts(
    tmp_path: Path, model: str, extra: list[str], planned: int | None
) -> None:
    out = tmp_path / "out"
    sets = [f'load.model="{model}"', *extra]
    args = [a for s in sets for a in ("--set", s)]
    p = mailsla("run", str(scenario(tmp_path)), "--no-live", "--out", str(out), *args)
    assert p.returncode == 0, p.stderr
    doc = result(out)
    c = doc["counts"]
    assert_accounted(doc)
    assert c["delivered"] == c["planned"] > 0
    if planned is not None:
        assert c["planned"] == planned
    if model == "closed":
        # two sessions, each at most one message per 20 ms of think time, for 2 s
        assert 20 <= c["planned"] <= 200
        assert doc["metrics"]["schedule_lag"]["max_s"] < 0.010  # no schedule to lag behind


@pytest.mark.slow
def test_worker_processes_give_complete_books(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = mailsla(
        "run",
        str(scenario(tmp_path)),
        "--no-live",
        "--out",
        str(out),
        "--set",
        "load.workers=2",
        "--set",
        "postoffice.workers=2",
        "--set",
        'fakemta.processing_delay="const(50ms)"',
    )
    assert p.returncode == 0, p.stderr
    doc = result(out)
    c = doc["counts"]
    assert c["planned"] == c["delivered"] == 200 and c["foreign"] == c["duplicate"] == 0
    assert_accounted(doc)
    for name in ("submit_latency", "service_time", "schedule_lag", "send_delay"):
        assert doc["metrics"][name]["count"] == 200, name
    assert 0.049 <= doc["metrics"]["send_delay"]["mean_s"] <= 0.060


async def test_an_in_process_run_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    """The runner freezes the start-up heap for the load (bench.timing.gcfreeze) and thaws it after:
    a process that goes on (mailsla selftest, the tests) collects what later runs drop."""
    sc = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", ['load.duration="1s"', "load.rate=20"]
    )
    res = await Runner(sc, tmp_path / "out", None).run()
    assert res.status == "completed" and res.doc["counts"]["delivered"] == 20
    assert gc.get_freeze_count() == 0
