"""Results first: a full disk costs the optional files, never result.json; a folder too small
for it is refused before the run. On small tmpfs mounts the test makes (root, as in CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.e2e.test_run import MAILSLA, ROOT, assert_accounted, result

QUICKSTART = ROOT / "scenarios" / "quickstart.toml"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of the test's own."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if IN_CI:
            pytest.fail("the full-disk tests need root and mount (CI runs as root)")
        pytest.skip("needs root to mount a small tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_too_small_a_folder_is_refused_before_the_run(small_disk: Path) -> None:
    (small_disk / "filler").write_bytes(b"\0" * (1536 * 1024))  # leaves < 1 MiB
    out = small_disk / "out"
    p = subprocess.run(
        [*MAILSLA, "run", str(QUICKSTART), "--no-live", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 2, p.stderr
    assert "MiB free for result.json" in p.stderr
    assert "submitting to" not in p.stderr


@pytest.mark.slow
def test_a_disk_filled_during_the_run_still_gets_result_json(small_disk: Path) -> None:
    out = small_disk / "out"
    proc = subprocess.Popen(
        [*MAILSLA, "run", str(QUICKSTART), "--no-live", "--out", str(out), "--duration", "4s"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # the run is up and has its reserve
    assert "submitting to" in line, line
    filler = small_disk / "filler"
    with filler.open("wb") as f:  # take every byte that is left
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    _, stderr = proc.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    doc = result(out)
    assert_accounted(doc)
    assert doc["counts"]["delivered"] == doc["counts"]["accepted"] > 0
    warnings = doc["run"].get("warnings", [])
    assert any("cannot write" in w for w in warnings), warnings
    assert proc.returncode in (0, 1), stderr  # judged: the optional files are extras
