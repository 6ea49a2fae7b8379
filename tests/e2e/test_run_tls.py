"""End to end: STARTTLS and AUTH submission, and targets that are not usable SMTP servers."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.e2e.test_run import MAILSLA, QUICK, ROOT, assert_accounted, result, run_scenario

pytestmark = pytest.mark.slow
SECRET = "pw-Xq7Zr"


def run(
    tmp_path: Path, text: str, env: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess[str], Path]:
    return run_scenario(tmp_path, text, env=env)


def test_starttls_and_auth_against_the_embedded_fakemta(tmp_path: Path) -> None:
    text = QUICK + '[system]\ntls = "required"\n[system.auth]\nmechanism = "login"\n'
    p, out = run(tmp_path, text, {"MAILSLA_SMTP_USER": "loadgen", "MAILSLA_SMTP_PASSWORD": SECRET})
    assert p.returncode == 0, p.stderr
    doc = result(out)
    assert doc["counts"]["delivered"] == doc["counts"]["planned"] == 200
    m = doc["metrics"]
    assert m["stage.starttls"]["count"] == m["stage.auth"]["count"] == 4  # one per session
    assert m["stage.dot"]["count"] == 200
    assert doc["run"]["system"]["tls"] == "required"
    assert SECRET not in (out / "result.json").read_text()
    assert_accounted(doc)


def test_missing_credentials_are_a_usage_error(tmp_path: Path) -> None:
    text = QUICK + '[system.auth]\npassword_env = "NO_SUCH_VARIABLE_X"\n'
    p, _ = run(tmp_path, text, {"MAILSLA_SMTP_USER": "u"})
    assert p.returncode == 2
    assert "system.auth.password_env" in p.stderr and "NO_SUCH_VARIABLE_X" in p.stderr
    assert "Traceback" not in p.stderr


@pytest.fixture
def tls_fakemta(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """``mailsla fakemta`` on its own, with STARTTLS (self-signed) and a required AUTH user."""
    po_port = free_port()
    proc = subprocess.Popen(
        [
            *MAILSLA,
            "fakemta",
            "--relay-to",
            f"127.0.0.1:{po_port}",
            "--processing-delay",
            "const(1ms)",
            "--tls",
            "--auth",
            f"loadgen:{SECRET}",
            "--auth-required",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    info: dict[str, Any] = {}
    for _ in range(10):  # human-readable lines, then one JSON line
        line = proc.stdout.readline()
        if line.startswith("{"):
            info = json.loads(line)
            break
    assert info, "fakemta did not report where it listens"
    info["po_port"] = po_port
    yield info
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=20)


def _smtp_text(info: dict[str, Any], extra: str = "") -> str:
    return (
        QUICK
        + f"""
[system]
kind = "smtp"
submit = "{info["submit"]}"
tls = "required"
{extra}
[system.auth]
[postoffice]
listen = "127.0.0.1:{info["po_port"]}"
"""
    )


def test_real_server_tls_auth_ok(tls_fakemta: dict[str, Any], tmp_path: Path) -> None:
    text = _smtp_text(tls_fakemta, f'ca_file = "{tls_fakemta["cert_file"]}"')
    env = {"MAILSLA_SMTP_USER": "loadgen", "MAILSLA_SMTP_PASSWORD": SECRET}
    p, out = run(tmp_path, text, env)
    assert p.returncode == 0, p.stderr
    assert result(out)["counts"]["delivered"] == 200


def test_wrong_password_exit_3_stage_auth(tls_fakemta: dict[str, Any], tmp_path: Path) -> None:
    text = _smtp_text(tls_fakemta, f'ca_file = "{tls_fakemta["cert_file"]}"')
    env = {"MAILSLA_SMTP_USER": "loadgen", "MAILSLA_SMTP_PASSWORD": "wrong-one"}
    p, out = run(tmp_path, text, env)
    assert p.returncode == 3, p.stderr
    reason = p.stderr.strip().splitlines()[-1]
    assert "auth: 535" in reason and "Traceback" not in p.stderr, reason
    doc = result(out)
    assert {r["stage"] for r in doc["outcomes"]["rejected"]} == {"auth"}
    assert doc["counts"]["accepted"] == 0
    assert_accounted(doc)


def test_unverifiable_certificate_exit_3_stage_starttls(
    tls_fakemta: dict[str, Any], tmp_path: Path
) -> None:
    # No ca_file: the self-signed certificate is not trusted by the system's store.
    env = {"MAILSLA_SMTP_USER": "loadgen", "MAILSLA_SMTP_PASSWORD": SECRET}
    p, out = run(tmp_path, _smtp_text(tls_fakemta), env)
    assert p.returncode == 3, p.stderr
    reason = p.stderr.strip().splitlines()[-1]
    assert "starttls: certificate verify failed" in reason, reason
    doc = result(out)
    assert {f["stage"] for f in doc["outcomes"]["failed"]} == {"starttls"}
    assert_accounted(doc)
    # The insecure switch accepts it (and says nothing else changes).
    p, out = run(tmp_path, _smtp_text(tls_fakemta, "tls_insecure = true"), env)
    assert p.returncode == 0, p.stderr


@pytest.fixture
def not_smtp() -> Iterator[int]:
    """A port that answers like a web server."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield srv.getsockname()[1]
    done.set()
    t.join(2)
    srv.close()


def test_a_port_that_is_not_smtp_exit_3(not_smtp: int, tmp_path: Path) -> None:
    text = (
        QUICK
        + f"""
[system]
kind = "smtp"
submit = "127.0.0.1:{not_smtp}"
[postoffice]
listen = "127.0.0.1:{free_port()}"
"""
    )
    p, out = run(tmp_path, text)
    assert p.returncode == 3, p.stderr
    reason = p.stderr.strip().splitlines()[-1]
    assert "banner: protocol" in reason and "Traceback" not in p.stderr, reason
    assert_accounted(result(out))
