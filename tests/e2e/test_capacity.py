"""``mailsla capacity`` against the fake MTA, whose relay delivers at most ``max_rate``
messages a second and queues the rest: the search must find that rate within 5 % for two
rates and name backlog growth as what failed above it; a search cut short by its budget or
by SIGINT leaves a valid capacity.json, and costs at most the budget plus one step's
wind-down. Real processes, real sockets, short steps."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from bench.run.runner import INTERRUPT_GRACE_S
from tests.conftest import free_port
from tests.e2e.test_run import MAILSLA, ROOT
from tests.e2e.test_run_silent_port import silent_port  # noqa: F401 (a fixture)

SCENARIO = ROOT / "scenarios" / "capacity-fakemta.toml"
DRAIN_S = 1.0
STOP_S = 3.0  # the interpreter's start and the fake MTA's stop, beyond the step's drain
WIND_DOWN_S = DRAIN_S + INTERRUPT_GRACE_S + STOP_S
SHORT = (
    'capacity.warmup="0.5s"',
    'capacity.measure="1.5s"',
    f'capacity.drain="{DRAIN_S:g}s"',
)


def command(out: Path, *sets: str, budget: str = "80s") -> list[str]:
    args = [a for s in (*SHORT, *sets) for a in ("--set", s)]
    return [*MAILSLA, "capacity", str(SCENARIO), "--out", str(out), "--budget", budget, *args]


def capacity(out: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((out / "capacity.json").read_text())
    assert doc["schema"] == "mailsla.capacity/1"
    for key in ("capacity", "steps", "confirm", "status", "cut_short", "reason", "wall_s"):
        assert key in doc
    for step in doc["steps"]:
        assert (out / step["result"] / "result.json").is_file()
    return doc


def search(
    out: Path, *sets: str, budget: str = "80s"
) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        command(out, *sets, budget=budget),
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    return proc, time.monotonic() - t0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("max_rate", "start", "confirm", "measure"),
    # 5 % over 300/s grows the backlog by 15 msgs/s: over 3 s that stands clear of the noise a
    # loaded 2-core CI machine's stalls put in the samples (1.5 s did not, once: 316.2 passed)
    [(300, 200, "1s", "3s"), (1500, 1000, "0s", "1.5s")],
)
def test_the_search_finds_the_fake_mtas_max_rate(
    tmp_path: Path, max_rate: int, start: int, confirm: str, measure: str
) -> None:
    out = tmp_path / "cap"
    proc, _ = search(
        out,
        f'capacity.measure="{measure}"',
        f"fakemta.max_rate={max_rate}",
        f"capacity.start_rate={start}",
        f'capacity.confirm="{confirm}"',
        "capacity.repeats=3",  # a borderline step judged by majority, not one trial
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    doc = capacity(out)
    cap = doc["capacity"]
    assert doc["status"] == "completed" and not doc["cut_short"], doc["reason"]
    rate = cap["sustainable_rate"]
    assert abs(rate - max_rate) / max_rate <= 0.05, [
        (s["rate"], s["verdict"], s["failed"], s["backlog"]) for s in doc["steps"]
    ]
    assert cap["per_minute"] == pytest.approx(rate * 60)
    assert cap["failed_by"] == "backlog_growth"
    assert cap["no_fault_rate"] is not None and cap["no_fault_rate"] <= rate
    assert cap["lowest_failing_rate"] > rate
    failing = [s for s in doc["steps"] if s["verdict"] == "fail"]
    assert failing and all(s["backlog_slope"] > 0 for s in failing)
    assert all("p99" in s["latency_s"] for s in doc["steps"])
    assert "Latency vs load" in proc.stdout and "sustainable rate" in proc.stdout
    assert "step 1:" in proc.stdout and "best proven" in proc.stdout
    html = (out / "capacity.html").read_text()
    assert 'data-plot="latency-vs-load"' in html and 'data-plot="backlog-vs-load"' in html
    if confirm != "0s":
        assert [c["share"] for c in doc["confirm"]] == [0.8, 1.0, 1.2]
        assert doc["confirm"][2]["verdict"] == "fail"  # 120 % of the capacity cannot hold
        assert doc["confirm"][0]["verdict"] == "pass"


@pytest.mark.slow
def test_a_budget_cuts_the_search_short_with_the_best_rate_so_far(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    budget = 7.0
    proc, wall = search(
        out, "fakemta.max_rate=300", "capacity.start_rate=100", budget=f"{budget:g}s"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a rate was proven
    doc = capacity(out)
    assert doc["cut_short"] and doc["status"] == "cut_short"
    assert doc["reason"].startswith("budget")
    passed = [s["rate"] for s in doc["steps"] if s["verdict"] == "pass"]
    assert passed and doc["capacity"]["sustainable_rate"] == max(passed) < 300
    assert doc["capacity"]["search_done"] is False
    assert "cut short" in proc.stdout
    assert wall <= budget + WIND_DOWN_S
    assert doc["wall_s"] <= budget + DRAIN_S + INTERRUPT_GRACE_S


@pytest.mark.slow
def test_sigint_stops_the_search_and_leaves_capacity_json(tmp_path: Path) -> None:
    out = tmp_path / "cap"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        # 3 s measured: over 1.5 s a backlog jittering by a message or two reads as growth
        # (CI saw "100 msgs/s fail (backlog_growth) ... +1.2/s" against max_rate 300)
        command(out, "fakemta.max_rate=300", "capacity.start_rate=100", 'capacity.measure="3s"'),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the first step's line: it passed, a rate is proven
    assert first.startswith("step 1: 100 msgs/s pass"), first
    time.sleep(1.0)  # into the second step's sending
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    wall_after = time.monotonic() - t0
    assert proc.returncode == 3, stdout + stderr
    assert "Traceback" not in stderr
    doc = capacity(out)
    assert doc["cut_short"] and doc["reason"] == "interrupted (SIGINT)"
    assert doc["capacity"]["sustainable_rate"] == 100.0
    assert doc["steps"][-1]["verdict"] == "interrupted"
    assert "best rate proven so far" in stderr
    assert wall_after < 80


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--precision", "2"], "capacity.precision"),
        (["--start-rate", "0"], "capacity.start_rate"),
        (["--budget", "soon"], "capacity.budget"),
        (["--set", "capacity.start_rate=500", "--set", "capacity.max_rate=100"], "max_rate"),
    ],
)
def test_bad_settings_exit_2_naming_the_field(tmp_path: Path, args: list[str], words: str) -> None:
    p = subprocess.run(
        [*MAILSLA, "capacity", str(SCENARIO), "--out", str(tmp_path / "o"), *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2, p.stderr
    assert words in p.stderr and str(SCENARIO.name) in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_the_budget_stops_a_step_under_way(tmp_path: Path) -> None:
    """An overloaded first step whose queue takes far longer to drain than the budget has
    left: the budget stops it mid-drain; nothing is proven (exit 1), capacity.json says why."""
    out = tmp_path / "cap"
    budget = 6.0
    proc, wall = search(
        out,
        "fakemta.max_rate=50",
        "capacity.start_rate=400",
        'capacity.drain="30s"',
        budget=f"{budget:g}s",
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    doc = capacity(out)
    assert doc["cut_short"] and doc["reason"] == "budget ended during a step"
    assert doc["steps"][-1]["verdict"] == "interrupted"
    assert doc["capacity"]["sustainable_rate"] is None
    assert wall <= budget + WIND_DOWN_S


@pytest.mark.slow
def test_a_population_sends_real_mail_sizes_and_reports_users(tmp_path: Path) -> None:
    """A step at 50 msgs/s (and one at 100 if the budget leaves room): the step's run sent
    real mail's sizes, and the users follow by hand: at 50/s, 50 deliveries/s ÷ (40 × 0.15 ×
    2 recipients / 3600) a user = 15,000; the peak of 1,000 users is 1000 × 40 × 0.15 / 3600
    msgs/s, 15 times less: headroom 14."""
    out = tmp_path / "cap"
    proc, _ = search(
        out,
        "capacity.start_rate=50",
        "fakemta.max_rate=300",
        "population.users=1000",
        "population.recipients=2",
        # 3 s measured, room for two trials (~4.5 s each with start and stop): over 1.5 s a
        # backlog jittering by a message or two read as growth, and one borderline trial
        # then left no budget for the next (CI: "50 msgs/s trial 2 fail (backlog_growth)")
        'capacity.measure="3s"',
        budget="12s",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = capacity(out)
    pop = doc["population"]
    assert pop["step_sizes"] == "real" and pop["step_recipients"] == 1
    assert pop["step_mean_bytes"] == pop["population_mean_bytes"]
    rate = doc["capacity"]["sustainable_rate"]
    assert rate in (50.0, 100.0)  # the budget may leave room for a second step
    # a user's peak: 40 × 0.15 × 2 / 3600 = 1/300 deliveries/s; 1,000 users send 1/0.6 msgs/s
    assert pop["users_supported"] == int(rate * 300)
    assert pop["headroom"] == pytest.approx(rate * 300 / 600 / (1000 / 600) - 1, abs=1e-3)
    step = json.loads((out / doc["steps"][0]["result"] / "result.json").read_text())
    assert step["run"]["scenario"]["message"]["sizes"] == "real"
    assert "message sizes: the steps sent real mail's sizes" in proc.stdout


@pytest.mark.slow
def test_a_silent_system_exits_3_as_run_does(tmp_path: Path, silent_port: int) -> None:  # noqa: F811
    """A port that takes connections and never answers: the step cannot be carried out, so
    the search exits 3 (as `mailsla run` does), not 1 ("even the start rate fails"), and
    capacity.json still says why."""
    out = tmp_path / "cap"
    proc, _ = search(
        out,
        'system.kind="smtp"',
        f'system.submit="127.0.0.1:{silent_port}"',
        f'postoffice.listen="127.0.0.1:{free_port()}"',  # kind = "smtp": a fixed port
        budget="40s",
    )
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    doc = capacity(out)
    assert doc["status"] == "error" and doc["capacity"]["sustainable_rate"] is None
    assert "banner" in doc["reason"], doc["reason"]
