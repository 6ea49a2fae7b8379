"""The README's route: a head started by ``ray start --head`` (token auth on, as Ray 2.x does
by default once a token exists), and ``mailsla run --ray HOST:PORT`` pointed at it. Without
the head's token mailsla says so at once (Ray itself would retry for half a minute); with it,
the run goes through. The head is this test's own: its own temp folder, HOME and token, and
it is stopped by killing its process group (never ``ray stop``, which stops every Ray here).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.procs.conftest import need_ray

ROOT = Path(__file__).resolve().parents[2]
MAILSLA = [sys.executable, "-m", "bench"]
SCENARIO = """
name = "head"
[load]
rate = 50
duration = "1s"
sessions = 2
"""

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Head:
    address: str
    env: dict[str, str]  # HOME of its own, no token (none in ~/.ray, no RAY_AUTH_*)
    token: Path  # the head's token file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Head]:
    """A token-auth head on 127.0.0.1: its address, an environment with no token, the token."""
    need_ray()
    tmp = tmp_path_factory.mktemp("head")
    home = tmp / "home"
    home.mkdir()
    token = tmp / "token"
    token.write_text(secrets.token_hex(16))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env = {**clean, "HOME": str(home), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    cmd = [str(ray), "start", "--head", f"--port={port}", "--num-cpus=1", "--block"]
    cmd += ["--include-dashboard=false", f"--temp-dir={tmp / 'ray'}", "--disable-usage-stats"]
    cmd += ["--object-store-memory=80000000"]
    head_env = {**env, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    log = (tmp / "head.log").open("w")
    p = subprocess.Popen(cmd, env=head_env, stdout=log, stderr=log, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until its GCS takes connections
            assert p.poll() is None, (tmp / "head.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the Ray head did not start in 90 s")
        yield Head(f"127.0.0.1:{port}", env, token)
    finally:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(10)
        log.close()
        out = subprocess.run(["pgrep", "-f", str(tmp / "ray")], capture_output=True, check=False)
        for pid in out.stdout.split():  # what left the process group (Ray's own daemons)
            os.kill(int(pid), signal.SIGKILL)


def run(tmp_path: Path, address: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "s.toml"
    path.write_text(SCENARIO)
    cmd = [*MAILSLA, "run", str(path), "--no-live", "--out", str(tmp_path / "out")]
    return subprocess.run(
        [*cmd, "--ray", address],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_without_the_heads_token_it_says_so_at_once(head: Head, tmp_path: Path) -> None:
    start = time.monotonic()
    p = run(tmp_path, head.address, head.env)
    assert p.returncode == 2, p.stderr
    assert "wants an auth token, and this host has none" in p.stderr
    assert "ray get-auth-token" in p.stderr and "Traceback" not in p.stderr
    assert time.monotonic() - start < 25  # not Ray's half-minute of retries


def test_a_wrong_token_is_named(head: Head, tmp_path: Path) -> None:
    p = run(tmp_path, head.address, {**head.env, "RAY_AUTH_TOKEN": "0" * 32})
    assert p.returncode == 2, p.stderr
    assert "refuses this host's auth token" in p.stderr


def test_with_the_heads_token_the_run_goes_through(head: Head, tmp_path: Path) -> None:
    p = run(tmp_path, head.address, {**head.env, "RAY_AUTH_TOKEN_PATH": str(head.token)})
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"Ray nodes ({head.address})" in p.stdout
