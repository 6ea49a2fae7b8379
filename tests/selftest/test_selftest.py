"""``mailsla selftest`` and ``--fast-paths`` end to end: every figure measured (the speeds are
what they report, never asserted here)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI, need_binary
from tests.e2e.test_run import mailsla


@pytest.mark.slow
@pytest.mark.realmta
def test_fast_paths_measures_each_against_its_library(tmp_path: Path) -> None:
    need_binary("smtp-source")
    need_binary("smtp-sink")
    out = tmp_path / "fp.json"
    p = mailsla("selftest", "--fast-paths", "--quick", "--rounds", "1", "--out", str(out))
    assert p.returncode == 0, p.stderr[-2000:]
    assert f"saved: {out}" in p.stdout
    doc = json.loads(out.read_text())
    assert doc["kind"] == "fastpaths"
    # the code measured: this checkout's commit
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    assert doc["code"]["commit"] == head.stdout.strip()
    names = [f["name"] for f in doc["figures"]]
    for want in ("aiosmtplib", "own protocol ÷ aiosmtpd", "aiosmtpd + aiosmtplib", "hdrh"):
        assert any(want in n for n in names), (want, names)
    assert len(names) == 5
    for f in doc["figures"]:
        assert f["goal"] == ">= 1.0"
        assert len(f["a"]["runs"]) == len(f["b"]["runs"]) == 1
        assert f["a"]["median"] > 0 and f["b"]["median"] > 0, f
        assert f["ratio"] == pytest.approx(f["a"]["median"] / f["b"]["median"])
        assert f["met"] is (f["ratio"] >= 1.0)


def test_fast_paths_refuses_the_memory_run_option() -> None:
    p = mailsla("selftest", "--fast-paths", "--memory-messages", "5000")
    assert p.returncode == 2
    assert "--memory-messages" in p.stderr and "--fast-paths" in p.stderr


def goal_rows(cores: int) -> list[str]:
    """The goal table of the performance issue, as the selftest names its rows."""
    rows = [
        "generator ÷ smtp-source, into smtp-sink, 10 sessions",
        "generator ÷ smtp-source, into smtp-sink, 50 sessions",
        "post office (1 proc.) ÷ smtp-sink, fed by smtp-source, 10 sessions",
        "post office (1 proc.) ÷ smtp-sink, fed by smtp-source, 50 sessions",
        "whole path: fake MTA ÷ Postfix, relaying the same load, 10 sessions",
        "whole path: fake MTA ÷ Postfix, relaying the same load, 50 sessions",
        "send_delay p99 at half the fake MTA's capacity",
        "submit_latency p99 at half the fake MTA's capacity",
        "resident memory over a 1,000-message run",
        "garbage at the post office: the run's submit_latency p99 ÷ a clean run's",
        "garbage at the post office: the run's late sends per 1,000 sent",
    ]
    if cores > 1:
        rows += [
            f"generator: {cores} processes ÷ ({cores} × 1 process), into smtp-sink, 10 sessions",
            f"generator: {cores} processes ÷ ({cores} × 1 process), into smtp-sink, 50 sessions",
            f"post office: {cores} processes ÷ ({cores} × 1 process)",
            f"Ray: {cores} generator actors ÷ {cores} generator processes",  # needs mailsla[ray]
        ]
    return rows


@pytest.mark.slow
@pytest.mark.realmta
def test_selftest_measures_every_goal_figure(tmp_path: Path) -> None:
    for name in ("smtp-source", "smtp-sink", "postfix"):
        need_binary(name)
    if os.geteuid() != 0:
        msg = "the throwaway Postfix of the whole-path figure needs root"
        pytest.fail(msg) if IN_CI else pytest.skip(msg)
    out = tmp_path / "st.json"
    p = mailsla(
        "selftest",
        "--quick",
        "--rounds",
        "1",
        "--memory-messages",
        "1000",
        "--out",
        str(out),
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["kind"] == "selftest"
    figs = {f["name"]: f for f in doc["figures"]}
    for row in goal_rows(os.cpu_count() or 1):
        found = [f for name, f in figs.items() if row in name]
        assert len(found) == 1, (row, list(figs))
        f = found[0]
        assert f["goal"], row
        assert isinstance(f["ratio"], float), (row, f)
        assert f["ratio"] > 0 or "late sends" in row, (row, f)  # no late send is the ideal
        assert isinstance(f["met"], bool), (row, f)
    # where the generator's time goes, against the bare client's, from the same runs
    cpu = next(f for name, f in figs.items() if name.startswith("CPU a message"))
    assert cpu["a"]["median"] > 0 and cpu["b"]["median"] > 0 and cpu["met"] is None
    # a 1,000-message run is too short to judge memory growth: said, not guessed
    growth = next(f for name, f in figs.items() if "memory growth" in name)
    assert growth["ratio"] is None and growth["met"] is None
    assert "not judged" in growth["note"]
