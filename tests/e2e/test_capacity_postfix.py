"""``mailsla capacity`` against a real, throwaway Postfix (``mailsla postfix``), short budget:
it reports a rate, the confirmations at 80/100/120 % and the latency-vs-load table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, need_binary
from tests.e2e.test_run import MAILSLA, ROOT

pytestmark = [pytest.mark.realmta, pytest.mark.slow]


@pytest.fixture
def postfix() -> Iterator[dict[str, Any]]:
    """`mailsla postfix` on free ports, as a user starts it; its JSON line."""
    need_binary("postfix")
    if os.geteuid() != 0:
        pytest.skip("a throwaway Postfix needs root")
    port, po = free_port(), free_port()
    base = Path(tempfile.gettempdir()) / f"mailsla-e2e-capacity-{port}"
    args = ["--port", str(port), "--relay-to", f"127.0.0.1:{po}", "--dir", str(base)]
    proc = subprocess.Popen(
        [*MAILSLA, "postfix", *args, "--users", "10"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = {}
        for _ in range(6):
            line = proc.stdout.readline()
            if line.startswith("{"):
                info = json.loads(line)
                break
        assert info, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not base.exists()


def test_capacity_of_a_real_postfix(postfix: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "cap"
    sets = [
        f'system.submit="{postfix["submit"]}"',
        f'postoffice.listen="{postfix["relay_to"]}"',
        "capacity.start_rate=50",
        "capacity.growth=4",
        'capacity.warmup="0.5s"',
        'capacity.measure="1.5s"',
        'capacity.drain="5s"',
        'capacity.confirm="1.5s"',
        "capacity.repeats=1",
    ]
    args = [a for s in sets for a in ("--set", s)]
    p = subprocess.run(
        [
            *MAILSLA,
            "capacity",
            str(ROOT / "scenarios" / "capacity-postfix.toml"),
            "--out",
            str(out),
            "--budget",
            "45s",
            "--precision",
            "0.25",
            *args,
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads((out / "capacity.json").read_text())
    cap = doc["capacity"]
    assert cap["sustainable_rate"] is not None and cap["sustainable_rate"] >= 50
    assert cap["failed_by"] is not None
    assert [c["share"] for c in doc["confirm"]] == [0.8, 1.0, 1.2], doc["reason"]
    assert all(c["verdict"] in ("pass", "fail") for c in doc["confirm"])
    assert doc["population"]["users_supported"] > 0
    assert "Latency vs load" in p.stdout and "confirmations:" in p.stdout
    for s in doc["steps"]:
        assert (out / s["result"] / "result.json").is_file()
    print(p.stdout)  # the run, for the CI log
