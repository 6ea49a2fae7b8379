"""mailsla against a real Postfix, relaying to mailsla's post office (a throwaway instance)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bench.postfix import PostfixError, ThrowawayPostfix
from tests.conftest import free_port, need_binary
from tests.test_run import assert_accounted, mailsla, result

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
