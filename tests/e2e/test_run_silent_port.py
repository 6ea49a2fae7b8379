"""A port that accepts connections and says nothing (an HTTP server, a stalled MTA): the run
fails fast with the true reason, not after a command timeout per attempt."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.test_run import assert_accounted, result, run_scenario


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts every connection and never writes a byte."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.2)
    held: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield int(srv.getsockname()[1])
    done.set()
    t.join(timeout=5)
    srv.close()
    for c in held:
        c.close()


@pytest.mark.slow
def test_silent_port_fails_fast_with_a_banner_timeout(tmp_path: Path, silent_port: int) -> None:
    text = f"""
name = "silent"
[system]
kind = "smtp"
submit = "127.0.0.1:{silent_port}"
[postoffice]
listen = "127.0.0.1:{free_port()}"
[load]
rate = 20
duration = "20s"
sessions = 10
"""
    # 20 s of load; the command's own timeout bounds the run, it is no speed measurement.
    p, out = run_scenario(tmp_path, text)
    assert p.returncode == 3, p.stderr
    doc = result(out)
    assert doc["run"]["status"] == "aborted"
    reason = doc["run"]["reason"]
    assert "connection attempts by 10 session(s) failed, the last at banner: timeout" in reason
    failed = {(f["stage"], f["error"]) for f in doc["outcomes"]["failed"]}
    assert failed == {("banner", "timeout")}
    assert doc["counts"]["accepted"] == 0
    # It gave up after the first attempts, long before the 20 s of load were over.
    assert doc["counts"]["not_sent"] > doc["counts"]["failed"]
    assert_accounted(doc)
