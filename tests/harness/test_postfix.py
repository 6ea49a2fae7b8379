"""mailsla against a real Postfix, relaying to mailsla's post office (a throwaway instance)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from bench.harness.dovecot import ThrowawayDovecot
from bench.harness.postfix import PostfixError, ThrowawayPostfix
from tests.conftest import free_port, need_binary
from tests.e2e.test_run import MAILSLA, ROOT, assert_accounted, mailsla, result

pytestmark = [pytest.mark.realmta, pytest.mark.slow]


@pytest.fixture
def postfix() -> ThrowawayPostfix:
    need_binary("postfix")
    if os.geteuid() != 0:
        pytest.skip("a throwaway Postfix instance needs root")
    pf = ThrowawayPostfix(f"127.0.0.1:{free_port()}")
    pf.start()
    yield pf  # type: ignore[misc]
    pf.stop()


def test_send_delay_through_real_postfix(postfix: ThrowawayPostfix, tmp_path: Path) -> None:
    po = postfix.relay_to
    text = f"""
name = "postfix"
[system]
kind = "smtp"
submit = "127.0.0.1:{postfix.port}"
[postoffice]
listen = "{po}"
domain = "remote.test"
[load]
rate = 50
duration = "2s"
drain = "20s"
sessions = 4
[message]
size = "2KiB"
[sla]
thresholds = ["send_delay.p99 < 10s"]
"""
    (tmp_path / "s.toml").write_text(text)
    out = tmp_path / "out"
    p = mailsla("run", str(tmp_path / "s.toml"), "--no-live", "--out", str(out))
    assert p.returncode == 0, p.stderr + postfix.log[-2000:]
    doc = result(out)
    c = doc["counts"]
    assert c["planned"] == c["delivered"] == 100, c
    assert_accounted(doc)
    sd = doc["metrics"]["send_delay"]
    # Postfix queues, then its smtp client connects and says MAIL FROM: a real, positive delay
    assert sd["count"] == 100 and 0 < sd["mean_s"] < 5
    assert "status=sent" in postfix.log


def _both(postfix: ThrowawayPostfix, mailbox: str) -> str:
    return f"""
name = "postfix-both"
[system]
kind = "smtp"
submit = "127.0.0.1:{postfix.port}"
inbound = "127.0.0.1:{postfix.port}"
[postoffice]
listen = "{postfix.relay_to}"
domain = "remote.test"
[mailbox]
domain = "local.test"
{mailbox}
[load]
direction = "both"
receive_share = 0.5
rate = 50
duration = "2s"
drain = "20s"
sessions = 4
[message]
size = "2KiB"
users = 5
"""


def _check_both(doc: dict[str, Any]) -> None:
    lanes = doc["directions"]
    assert lanes["send"]["counts"]["delivered"] == 50, lanes
    assert lanes["receive"]["counts"]["delivered"] == 50, lanes
    m = doc["metrics"]
    assert m["send_delay"]["count"] == 50 and 0 < m["send_delay"]["mean_s"] < 5
    assert m["receive_delay"]["count"] == 50 and 0 < m["receive_delay"]["mean_s"] < 5
    # Postfix relays before mailsla reads its 250: such intervals are kept as 0, never below.
    for name in ("send_delay", "receive_delay"):
        assert m[name]["min_s"] >= 0
        if m[name].get("negative"):
            assert any(w.startswith(f"{name}: ") for w in doc["run"]["warnings"])
    assert {"send_delay.max", "receive_delay.max"} <= {c["name"] for c in doc["sla"]["checks"]}
    assert_accounted(doc)


def test_both_directions_through_postfix_maildir(postfix: ThrowawayPostfix, tmp_path: Path) -> None:
    text = _both(postfix, f'watch = "maildir"\nmaildir = "{postfix.maildir_root}"')
    (tmp_path / "s.toml").write_text(text)
    out = tmp_path / "out"
    p = mailsla("run", str(tmp_path / "s.toml"), "--no-live", "--out", str(out))
    assert p.returncode == 0, p.stderr + postfix.log[-2000:]
    doc = result(out)
    _check_both(doc)
    assert doc["receive"]["mode"] == "inotify"
    # Postfix's virtual agent wrote them, one Maildir per user, as uid 65534.
    files = list(postfix.maildir_root.glob("user*/new/*"))
    assert len(files) == 50 and {f.stat().st_uid for f in files} == {65534}


def test_both_directions_through_postfix_and_dovecot_imap(
    postfix: ThrowawayPostfix, tmp_path: Path
) -> None:
    need_binary("dovecot")
    postfix.maildir_root.mkdir(parents=True, exist_ok=True)
    with ThrowawayDovecot(postfix.maildir_root, password="imap-pw") as dovecot:
        mailbox = (
            f'watch = "imap"\nimap = "127.0.0.1:{dovecot.port}"\npoll_interval = "50ms"\n'
            'dispose = "delete"'
        )
        (tmp_path / "s.toml").write_text(_both(postfix, mailbox))
        out = tmp_path / "out"
        p = subprocess.run(
            [*MAILSLA, "run", str(tmp_path / "s.toml"), "--no-live", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            check=False,
            env={**os.environ, "MAILSLA_IMAP_PASSWORD": "imap-pw"},
        )
        assert p.returncode == 0, p.stderr + postfix.log[-2000:] + dovecot.log[-2000:]
    doc = result(out)
    _check_both(doc)
    assert doc["receive"]["watch"] == "imap" and doc["receive"]["resolution_s"] == 0.05
    assert list(postfix.maildir_root.glob("user*/new/*")) == []  # expunged by the watcher


def test_postfix_log_is_shown_when_it_cannot_start(tmp_path: Path) -> None:
    need_binary("postfix")
    if os.geteuid() != 0:
        pytest.skip("a throwaway Postfix instance needs root")
    with socket.socket() as squatter:  # holds the port: Postfix's master cannot bind it
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        pf = ThrowawayPostfix(f"127.0.0.1:{free_port()}", port=squatter.getsockname()[1])
        with pytest.raises(PostfixError, match=r"(?s)did not start.*bind"):
            pf.start(timeout=15)


def test_postfix_command_runs_a_sandbox_until_ctrl_c(tmp_path: Path) -> None:
    need_binary("postfix")
    need_binary("dovecot")
    if os.geteuid() != 0:
        pytest.skip("a throwaway Postfix instance needs root")
    port, po, imap = free_port(), free_port(), free_port()
    base = Path(tempfile.gettempdir()) / f"mailsla-pf-test-{port}"  # Postfix's users must reach it
    proc = subprocess.Popen(
        [
            *MAILSLA,
            "postfix",
            "--port",
            str(port),
            "--relay-to",
            f"127.0.0.1:{po}",
            "--dir",
            str(base),
            "--users",
            "5",
            "--imap-port",
            str(imap),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = {}
        for _ in range(5):
            line = proc.stdout.readline()
            if line.startswith("{"):
                info = json.loads(line)
                break
        assert info, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        assert info["maildir"] == str(base / "mail" / "local.test"), info
        text = (ROOT / "scenarios" / "postfix.toml").read_text()
        text = (
            text.replace("127.0.0.1:2525", info["submit"])
            .replace("127.0.0.1:2526", info["relay_to"])
            .replace("/tmp/mailsla-postfix/mail/local.test", info["maildir"])
        )
        (tmp_path / "s.toml").write_text(text)
        out = tmp_path / "out"
        p = mailsla(
            "run",
            str(tmp_path / "s.toml"),
            "--no-live",
            "--out",
            str(out),
            "--set",
            'load.duration="1s"',
            "--set",
            "message.users=5",
        )
        assert p.returncode == 0, p.stderr
        doc = result(out)
        assert doc["counts"]["delivered"] == 100
        assert_accounted(doc)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not base.exists()
