"""``mailsla selftest --fast-paths`` end to end: every figure measured both ways (its speed is
what it reports, never asserted here)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need_binary
from tests.test_run import mailsla


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
