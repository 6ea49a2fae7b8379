"""``mailsla fakemta``: refuses addresses off loopback unless --allow-remote (as ``run``
does), takes its limits as options, and reads AUTH users from a file or the environment, so
that a password never shows in ``ps``; --auth still works, with a warning."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from click.testing import CliRunner

from bench.cli.fakemta_options import AUTH_ENV, auth_users
from bench.cli.main import main
from bench.errors import UsageError
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pa:ss w0rd-not-in-ps"


def fakemta(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["fakemta", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--relay-to", "192.0.2.1:25"], "--relay-to: 192.0.2.1"),
        (["--relay-to", "mx.example.test:25"], "--relay-to: mx.example.test"),
        (["--relay-to", "127.0.0.1:25", "--listen", "0.0.0.0:0"], "--listen: 0.0.0.0"),
        (
            ["--relay-to", "127.0.0.1:25", "--mailbox-root", "/nonexistent", "--inbound", "[::]:0"],
            "--inbound: ::",
        ),
    ],
)
def test_off_loopback_is_refused_without_allow_remote(args: list[str], named: str) -> None:
    code, out = fakemta(*args)
    assert code == 2 and named in out and "--allow-remote" in out, out
    # with it, the check passes: the next one (--tls-required without --tls) speaks
    code, out = fakemta(*args, "--allow-remote", "--tls-required")
    assert code == 2 and "--tls-required needs --tls" in out, out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--recipient-limit", "0"], "--recipient-limit"),
        (["--line-length-limit", "100"], "--line-length-limit"),
        (["--message-size-limit", "lots"], "--message-size-limit"),
        (["--message-size-limit", "9" * 400], "--message-size-limit"),
        (["--message-size-limit", "0"], "--message-size-limit"),
        (["--idle-timeout", "0s"], "--idle-timeout"),
        (["--idle-timeout", "soon"], "--idle-timeout"),
        (["--queue-bytes-limit", "0"], "--queue-bytes-limit"),
        (["--error-limit", "0"], "--error-limit"),
    ],
)
def test_bad_limits_are_usage_errors(args: list[str], said: str) -> None:
    code, out = fakemta("--relay-to", "127.0.0.1:25", *args)
    assert code == 2 and said in out and "Traceback" not in out, out


def test_auth_users_come_from_the_file_the_environment_and_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "users"
    f.write_text(f"# who may send\nalice:{SECRET}\n\nbob:b\n")
    monkeypatch.setenv(AUTH_ENV, "carol:c:c")
    assert auth_users((), str(f)) == [("alice", SECRET), ("bob", "b"), ("carol", "c:c")]
    assert capsys.readouterr().err == ""  # no warning without --auth
    assert auth_users(("dave:d",), None)[-1] == ("dave", "d")
    assert "ps shows it" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["nopassword", ":nouser", " alice:x"])
def test_a_bad_auth_line_names_the_line_not_the_password(tmp_path: Path, text: str) -> None:
    f = tmp_path / "users"
    f.write_text(f"alice:{SECRET}\n{text}\n")
    with pytest.raises(UsageError, match="line 2: not USER:PASSWORD") as info:
        auth_users((), str(f))
    assert SECRET not in str(info.value) and text not in str(info.value)


def test_an_unreadable_auth_file_is_a_usage_error(tmp_path: Path) -> None:
    code, out = fakemta("--relay-to", "127.0.0.1:25", "--auth-file", str(tmp_path / "none"))
    assert code == 2 and "--auth-file: cannot read" in out


@pytest.fixture
def auth_fakemta(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The command on its own, STARTTLS and a required AUTH user from --auth-file; what it
    reported, and its command line as ps shows it."""
    users = tmp_path / "users"
    users.write_text(f"loadgen:{SECRET}\n")
    args = ["--relay-to", f"127.0.0.1:{free_port()}", "--tls", "--auth-required"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "fakemta", *args, "--auth-file", str(users)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = {}
        for _ in range(10):
            line = proc.stdout.readline()
            if line.startswith("{"):
                info = json.loads(line)
                break
        assert info, "fakemta did not report where it listens"
        info["cmdline"] = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        yield info
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert SECRET not in err and "warning" not in err


async def test_auth_from_a_file_works_and_ps_never_sees_the_password(
    auth_fakemta: dict[str, Any],
) -> None:
    info = auth_fakemta
    assert SECRET.encode() not in info["cmdline"]  # what ps shows
    assert info["limits"] == {
        "queue_bytes_limit": 1 << 30,
        "recipient_limit": 1000,
        "line_length_limit": 2048,
        "message_size_limit": 10_240_000,
        "error_limit": 20,
        "idle_timeout": 300.0,
    }
    host, port = str(info["submit"]).rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=str(info["cert_file"]))
    async with aiosmtplib.SMTP(
        hostname=host, port=int(port), tls_context=ctx, start_tls=True, timeout=10
    ) as client:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await client.login("loadgen", "wrong")
        await client.login("loadgen", SECRET)
