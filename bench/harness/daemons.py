"""What the throwaway Postfix and Dovecot share: their error, a free port, and waiting for a server
process
started in the foreground to greet on it."""

from __future__ import annotations

import socket
import subprocess
import time

from bench.errors import StartupError


class HarnessError(StartupError):
    """A throwaway server (Postfix, Dovecot) could not be set up or did not start."""


def free_port() -> int:
    """A loopback port that was free a moment ago (for servers that must be told a port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_greeting(
    proc: subprocess.Popen[bytes], port: int, greeting: bytes, timeout: float, poll: float
) -> str | None:
    """Wait until 127.0.0.1:*port* answers with *greeting*: None once it does, else what the
    process printed (it exited, or *timeout* seconds passed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(greeting):
                    return None
        except OSError:
            time.sleep(poll)
    if proc.poll() is not None and proc.stdout is not None:
        return proc.stdout.read().decode(errors="replace")
    return ""
