"""What users of k6 and wrk2 reach for: load shorthands, --version with the commit,
results/latest, report on a result.json, exit codes in --help; and errors found before a run,
not after it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.version import git_commit
from tests.e2e.test_run import MAILSLA, QUICK, ROOT, mailsla, result, scenario


def test_version_names_the_commit() -> None:
    p = mailsla("--version")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("mailsla ")
    commit = git_commit()
    if commit is not None:  # a git checkout (the tests run from one)
        assert f"(commit {commit})" in p.stdout


def test_help_lists_the_exit_codes() -> None:
    p = mailsla("--help")
    assert p.returncode == 0
    for line in ("0  every SLA check", "1  an SLA check", "2  bad usage", "3  the run could"):
        assert line in p.stdout


def test_unwritable_out_is_refused_before_the_run(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    p = mailsla("run", str(scenario(tmp_path)), "--no-live", "--out", str(blocker / "x"))
    assert p.returncode == 2, p.stderr
    assert "--out" in p.stderr and "cannot write" in p.stderr
    assert "submitting to" not in p.stderr  # nothing was started
    assert "Traceback" not in p.stderr


@pytest.mark.parametrize("bad", [("--rate", "fast"), ("--duration", "ten"), ("--sessions", "0")])
def test_shorthands_are_validated_like_set(tmp_path: Path, bad: tuple[str, str]) -> None:
    p = mailsla("run", str(scenario(tmp_path)), "--no-live", *bad)
    assert p.returncode == 2, p.stderr
    field = {"--rate": "load.rate", "--duration": "load.duration", "--sessions": "load.sessions"}
    assert field[bad[0]] in p.stderr
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_shorthands_latest_and_report_on_result_json(tmp_path: Path) -> None:
    """A run into the default results folder with --rate/--duration/--sessions: the shorthands
    are what ran, results/latest points at it, and ``report`` takes its result.json."""
    work = tmp_path / "w"
    work.mkdir()
    (work / "s.toml").write_text(QUICK)
    cmd = [*MAILSLA, "run", "s.toml", "--no-live", "--rate", "40", "--duration", "1s"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [*cmd, "--sessions", "2"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    latest = work / "results" / "latest"
    assert latest.is_symlink()
    doc = result(latest)
    load = doc["run"]["scenario"]["load"]
    assert (load["rate"], load["duration"], load["sessions"]) == (40.0, "1s", 2)
    assert doc["run"]["overrides"][-3:] == ["load.rate=40", 'load.duration="1s"', "load.sessions=2"]
    r = subprocess.run(
        [*MAILSLA, "report", str(latest / "result.json")],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "SLA checks" in r.stdout


def test_report_on_a_broken_result_names_what_is_missing(tmp_path: Path) -> None:
    baseline = next((ROOT / "results" / "baseline").glob("*/result.json"))
    doc = json.loads(baseline.read_text())
    del doc["sla"]
    broken = tmp_path / "result.json"
    broken.write_text(json.dumps(doc))
    p = mailsla("report", str(broken))
    assert p.returncode == 2, p.stderr
    assert "no dict 'sla'" in p.stderr
    assert "KeyError" not in p.stderr and "Traceback" not in p.stderr
    shutil.copy(baseline, broken)
    p = mailsla("report", str(tmp_path))
    assert p.returncode == 0, p.stderr
