"""mailsla run, end to end: interval logs (metrics.hlog, read back by hdrh's reader),
timeseries.csv, window thresholds and abort_on_fail; and the baseline gate against the
committed baseline: a shorter run is refused (exit 2), compared per second with
``--allow-different``, and ``run --json --baseline`` keeps stdout JSON."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from bench.core.hdr import new_histogram
from bench.errors import ExitCode
from tests.conftest import free_port
from tests.e2e.test_run import MAILSLA, QUICK, ROOT, assert_accounted, mailsla, result, scenario

COUNTS = ("planned", "sent", "accepted", "delivered", "failed", "rejected")
BASELINE = "results/baseline/quickstart"  # the committed one: 20 s at 200/s
SHORT = ("run", "scenarios/quickstart.toml", "--no-live", "--set", 'load.duration="2s"')

ABORTING = """
name = "gate"
seed = 3
[fakemta]
processing_delay = "const(200ms)"
[load]
rate = 50
duration = "30s"
drain = "5s"
sessions = 4
[sla]
thresholds = [
  "send_delay.p99 < 5s",
  {threshold = "send_delay.p99[1s] < 50ms", abort_on_fail = true, grace = "1s"},
]
"""


def read_log(path: Path) -> list[HdrHistogram]:
    reader = HistogramLogReader(str(path), new_histogram())
    out = []
    while (h := reader.get_next_interval_histogram()) is not None:
        out.append(h)
    reader.close()
    return out


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def per_tag(hists: list[HdrHistogram]) -> dict[str, int]:
    out: dict[str, int] = {}
    for h in hists:
        out[h.get_tag()] = out.get(h.get_tag(), 0) + h.get_total_count()
    return out


@pytest.mark.slow
def test_a_run_logs_every_interval_and_a_csv(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = mailsla(
        "run",
        str(scenario(tmp_path)),
        "--no-live",
        "--out",
        str(out),
        "--set",
        'load.duration="3s"',
        "--set",
        'sla.thresholds=["send_delay.p99 < 5s", "send_delay.p99[1s] < 5s"]',
    )
    assert p.returncode == 0, p.stderr
    doc = result(out)
    head = (out / "metrics.hlog").read_text().splitlines()[:3]
    assert head[0] == "#[Histogram log format version 1.3]"
    assert head[1].startswith("#[StartTime: ") and head[2].startswith("#[BaseTime: ")
    sums = per_tag(read_log(out / "metrics.hlog"))
    assert sums["send_delay"] == doc["metrics"]["send_delay"]["count"] == 300
    for tag, n in sums.items():  # one process: every metric of the run, complete
        assert doc["metrics"][tag]["count"] == n, tag
    assert {"submit_latency", "delivery_delay", "stage.mail"} <= set(sums)

    header, rows = read_csv(out / "timeseries.csv")
    assert header[:7] == ["t_s", *COUNTS] and "send_delay.p99_s" in header
    assert 3 <= len(rows) <= 3 + 5 + 2  # about one per second of the run (and drain)
    for k, name in enumerate(COUNTS, start=1):
        column = [int(r[k]) for r in rows]
        assert column == sorted(column), name  # cumulative
        assert column[-1] == doc["counts"][name], name
    times = [float(r[0]) for r in rows]
    assert times == sorted(times) and times[0] == pytest.approx(1.0, abs=0.3)

    windowed = next(c for c in doc["sla"]["checks"] if c["name"] == "send_delay.p99[1s]")
    assert windowed["pass"] and windowed["note"].startswith("worst window ")
    assert "aborted_by" not in doc["run"]


@pytest.mark.slow
def test_abort_on_fail_stops_the_run_exit_1(tmp_path: Path) -> None:
    out = tmp_path / "out"
    began = time.monotonic()
    p = mailsla("run", str(scenario(tmp_path, ABORTING)), "--no-live", "--out", str(out))
    took = time.monotonic() - began
    assert p.returncode == 1, p.stderr
    doc = result(out)
    run = doc["run"]
    assert run["status"] == "aborted"
    assert run["aborted_by"] == "send_delay.p99[1s] < 50ms"
    assert run["reason"].startswith("threshold send_delay.p99[1s] < 50ms failed at ")
    assert "observed 2" in run["reason"]  # ~200ms
    assert "threshold send_delay.p99[1s] < 50ms failed" in p.stderr
    span = datetime.fromisoformat(run["ended_at"]) - datetime.fromisoformat(run["started_at"])
    assert span.total_seconds() < 15 and took < 25  # not the 30 s of the schedule
    c = doc["counts"]
    assert 0 < c["sent"] < 50 * 10
    assert_accounted(doc)
    # Held 200 ms when the threshold stopped the run: in flight at the stop, not lost.
    assert c["undelivered"] == 0 and c["in_flight_at_stop"] > 0
    assert next(ch for ch in doc["sla"]["checks"] if ch["name"] == "send_delay.max")["pass"]
    check = next(ch for ch in doc["sla"]["checks"] if ch["name"] == "send_delay.p99[1s]")
    assert not check["pass"] and "aborted the run at" in check["note"]
    assert doc["sla"]["verdict"] == "fail"
    sums = per_tag(read_log(out / "metrics.hlog"))
    assert sums["send_delay"] == doc["metrics"]["send_delay"]["count"]


@pytest.mark.slow
def test_worker_processes_log_the_parents_metrics(tmp_path: Path) -> None:
    out = tmp_path / "out"
    p = mailsla(
        "run", str(scenario(tmp_path)), "--no-live", "--out", str(out), "--set", "load.workers=2"
    )
    assert p.returncode == 0, p.stderr
    doc = result(out)
    text = (out / "metrics.hlog").read_text()
    assert "generator worker processes report their metrics at the end" in text
    sums = per_tag(read_log(out / "metrics.hlog"))
    assert set(sums) == {"send_delay", "delivery_delay"}
    assert sums["send_delay"] == doc["metrics"]["send_delay"]["count"] == 200
    header, _ = read_csv(out / "timeseries.csv")
    assert "submit_latency.p99_s" not in header and "send_delay.p99_s" in header


@pytest.mark.slow
def test_failed_and_interrupted_runs_still_write_the_files(tmp_path: Path) -> None:
    refused = (
        QUICK
        + f"""
[system]
kind = "smtp"
submit = "127.0.0.1:{free_port()}"
[postoffice]
listen = "127.0.0.1:{free_port()}"
"""
    )
    out = tmp_path / "refused"
    p = mailsla("run", str(scenario(tmp_path, refused)), "--no-live", "--out", str(out))
    assert p.returncode == 3, p.stderr
    assert (out / "metrics.hlog").read_text().startswith("#[Histogram log format version 1.3]")
    assert read_csv(out / "timeseries.csv")[0][:7] == ["t_s", *COUNTS]

    out = tmp_path / "interrupted"
    args = ["run", str(scenario(tmp_path)), "--no-live", "--out", str(out)]
    proc = subprocess.Popen(
        [*MAILSLA, *args, "--set", 'load.duration="60s"'],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    assert "submitting to" in proc.stderr.readline()
    time.sleep(2.5)  # a couple of intervals (not synchronisation: any amount works)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 3, stderr
    doc = result(out)
    assert doc["run"]["status"] == "interrupted"
    sums = per_tag(read_log(out / "metrics.hlog"))
    assert sums.get("send_delay", 0) == doc["metrics"]["send_delay"]["count"]
    _, rows = read_csv(out / "timeseries.csv")
    assert rows and int(rows[-1][2]) == doc["counts"]["sent"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart for 2 s instead of the baseline's 20: its run folder."""
    out = tmp_path_factory.mktemp("short") / "out"
    p = mailsla(*SHORT, "--out", str(out))
    assert p.returncode == ExitCode.PASS, p.stdout + p.stderr
    return out


@pytest.mark.slow
def test_a_shorter_run_than_the_baseline_is_refused_exit_2(tmp_path: Path) -> None:
    out, junit = tmp_path / "out", tmp_path / "junit.xml"
    p = mailsla(*SHORT, "--out", str(out), "--baseline", BASELINE, "--junit", str(junit))
    assert p.returncode == ExitCode.USAGE, p.stdout + p.stderr
    assert f"error: {BASELINE} and " in p.stderr and " are not comparable: " in p.stderr
    assert "load.duration: baseline 20s, current 2s" in p.stderr
    assert "Baseline comparison" not in p.stdout + p.stderr  # nothing compared
    if (out / "result.json").exists():  # refused after the run: it is written and judged
        assert result(out)["sla"]["verdict"] == "pass"
        cases = ET.parse(junit).getroot().iter("testcase")
        case = next(c for c in cases if c.get("name") == "comparable scenario")
        failure = case.find("failure")
        assert failure is not None and "load.duration" in str(failure.get("message"))


@pytest.mark.slow
def test_compare_refuses_and_allow_different_compares_counts_per_second(short_run: Path) -> None:
    out = short_run
    p = mailsla("compare", BASELINE, str(out))
    assert p.returncode == ExitCode.USAGE and p.stdout == "", p.stdout + p.stderr
    assert "load.duration: baseline 20s, current 2s" in p.stderr
    assert "--allow-different" in p.stderr
    p = mailsla("compare", BASELINE, str(out), "--allow-different", "--json")
    assert p.returncode in (ExitCode.PASS, ExitCode.FAIL), p.stderr  # latency: this machine's
    rows = json.loads(p.stdout)
    counts = [r for r in rows if r["stat"] == "count"]
    assert len(counts) >= 9 and not [r for r in counts if r["verdict"] == "REGRESSED"]
    send = next(r for r in counts if r["metric"] == "send_delay")
    assert send["kind"] == "per_s" and send["baseline"] == 200.0
    assert send["current"] == pytest.approx(200.0, rel=0.02) and send["baseline_count"] == 4000
    assert [r["metric"] for r in rows[:2]] == ["send_delay", "send_delay"]  # the SLA's first
    assert p.stderr.startswith("warning: comparing runs of different scenarios")
    assert "load.duration: baseline 20s, current 2s" in p.stderr


@pytest.mark.slow
def test_run_json_with_a_baseline_keeps_stdout_json(short_run: Path, tmp_path: Path) -> None:
    base = short_run
    p = mailsla(*SHORT, "--json", "--out", str(tmp_path / "b"), "--baseline", str(base))
    assert p.returncode in (ExitCode.PASS, ExitCode.FAIL), p.stderr
    doc = json.loads(p.stdout)  # stdout: result.json, nothing else
    assert doc["schema"] == "mailsla.result/1" and doc == result(tmp_path / "b")
    lines = p.stderr.splitlines()
    assert any(line.startswith("Baseline comparison: ") for line in lines)
    mean = next(line for line in lines if line.split()[:3] == ["send_delay", "│", "mean"])
    assert mean.split("│")[7].strip() in ("ok", "better", "worse-within-noise", "REGRESSED")
    assert max(len(line.rstrip()) for line in lines) > 80  # its own width, not 80 columns
