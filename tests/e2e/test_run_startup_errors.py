"""Start-up failures say what to do, in one line, with nothing of mailsla's internals."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import free_port
from tests.e2e.test_run import result, run_scenario


def test_a_real_systems_missing_maildir_root_is_named(tmp_path: Path) -> None:
    """scenarios/postfix.toml with no `mailsla postfix` running: its Maildir root is missing."""
    missing = tmp_path / "mail" / "local.test"
    text = f"""
name = "nomail"
[system]
kind = "smtp"
submit = "127.0.0.1:{free_port()}"
inbound = "127.0.0.1:{free_port()}"
[postoffice]
listen = "127.0.0.1:{free_port()}"
[mailbox]
domain = "local.test"
watch = "maildir"
maildir = "{missing}"
[load]
direction = "both"
rate = 10
duration = "2s"
"""
    p, out = run_scenario(tmp_path, text)
    assert p.returncode == 3, p.stderr
    reason = result(out)["run"]["reason"]
    assert f"mailbox.maildir: {missing} is not a folder" in reason
    assert "mailsla postfix" in reason
    assert "Errno" not in p.stderr and "Traceback" not in p.stderr
