"""How a generator session talks to the system: EHLO name, STARTTLS, AUTH, connection reuse.

:class:`SessionOptions` is a small picklable value (worker processes get a copy); the TLS
context is built from it once per process. The password travels only here, never into results
(its ``repr`` hides it).
"""

from __future__ import annotations

import base64
import functools
import ssl
from dataclasses import dataclass, field

TLS_MODES = ("off", "opportunistic", "required")
AUTH_MECHANISMS = ("plain", "login")


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """Options shared by every session of a run (both clients understand all of them)."""

    ehlo: str = "mailsla.test"
    timeout: float = 30.0  # a command's reply
    # Connecting and the greeting: a peer that is no SMTP server (or is stalled) is found in
    # seconds, not after a whole command timeout per attempt.
    greeting_timeout: float = 5.0
    pipelining: bool = True
    tls: str = "off"  # off | opportunistic | required
    ca_file: str | None = None
    tls_verify: bool = True
    server_name: str | None = None  # for SNI and certificate checks; default: the host
    auth_user: str | None = None
    auth_password: str | None = field(default=None, repr=False)
    auth_mechanism: str = "plain"
    max_per_connection: int = 0  # 0: unlimited; 1: a connection per message

    @property
    def auth(self) -> bool:
        return self.auth_user is not None

    def ssl_context(self) -> ssl.SSLContext:
        return _context(self.ca_file, self.tls_verify)


@functools.cache
def _context(ca_file: str | None, verify: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def auth_plain(user: str, password: str) -> bytes:
    """The AUTH PLAIN command line (RFC 4616, initial response included)."""
    token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode())
    return b"AUTH PLAIN " + token + b"\r\n"


def b64line(text: str) -> bytes:
    """One base64 line of an AUTH LOGIN exchange."""
    return base64.b64encode(text.encode()) + b"\r\n"


def tls_error(exc: BaseException) -> str:
    """A short label for a failed TLS handshake (certificate problems named as such)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or "certificate verify failed"
        return f"certificate verify failed: {why}"
    if isinstance(exc, ssl.SSLError):
        return f"tls: {exc.reason or exc}".lower()
    return type(exc).__name__
