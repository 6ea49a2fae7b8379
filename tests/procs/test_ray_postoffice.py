"""Where ``--ray-postoffice`` puts the post office (bench.procs.ray_postoffice): pure, no
cluster needed. The cluster runs are in tests/procs/test_ray_fleet.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import UsageError
from bench.procs.ray_clocks import Node
from bench.procs.ray_postoffice import postoffice_nodes

ROOT = Path(__file__).resolve().parents[2]
A = Node("a1b2c3d4e5f6" + "0" * 44, "10.0.0.5", 4)
B = Node("ffee00112233" + "0" * 44, "10.0.0.6", 2)
C = Node("c0ffee000000" + "0" * 44, "10.0.0.6", 2)  # a second node on B's host


def test_driver_each_an_address_or_an_id() -> None:
    assert postoffice_nodes([A, B], "driver") is None
    assert postoffice_nodes([A, B], "each") == [A, B]
    assert postoffice_nodes([A, B], "10.0.0.6") == [B]
    assert postoffice_nodes([A, B, C], "c0ffee") == [C]  # an id's first characters
    assert postoffice_nodes([A, B, C], C.node_id) == [C]


def test_a_name_that_fits_no_node_or_several_says_which_there_are() -> None:
    with pytest.raises(UsageError) as none:
        postoffice_nodes([A, B], "10.0.0.9")
    assert "no node of the cluster" in str(none.value)
    assert "10.0.0.5 (id a1b2c3d4e5f6)" in " ".join(none.value.args)
    with pytest.raises(UsageError) as two:
        postoffice_nodes([A, B, C], "10.0.0.6")
    assert "2 nodes have that address" in str(two.value) and "node id" in " ".join(two.value.args)


def test_ray_postoffice_without_ray_exits_2(tmp_path: Path) -> None:
    quick = str(ROOT / "scenarios" / "quickstart.toml")
    args = ["--no-live", "--out", str(tmp_path / "o"), "--ray-postoffice", "each"]
    p = subprocess.run(
        [sys.executable, "-m", "bench", "run", quick, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert p.returncode == 2 and "--ray-postoffice: add --ray" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
