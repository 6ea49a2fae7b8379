"""What became of a message sent over SMTP, and what the generator needs of a session.

An SMTP reply other than the expected one is a *rejection* (code, stage); a network error, a
timeout or a failed TLS handshake is a *failure* (error, stage). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from aiosmtplib import SMTPServerDisconnected, SMTPTimeoutError

OutcomeKind = Literal["accepted", "rejected", "failed"]


class Session(Protocol):
    """What the generator needs of an SMTP session (aiosmtplib's or the pipelined one)."""

    host: str
    port: int
    stage: str
    connects: int
    connect_failures: int

    @property
    def connected(self) -> bool: ...

    async def send(self, mail_from: str, rcpts: list[str], data: bytes) -> Outcome: ...

    def close(self) -> None: ...

    async def quit(self) -> None: ...


@dataclass(slots=True)
class Outcome:
    """What became of one message: accepted (with the time of the 250), rejected or failed."""

    kind: OutcomeKind
    stage: str = ""
    code: int = 0
    error: str = ""
    accepted_ns: int = 0


def error_name(exc: BaseException) -> str:
    """A short, stable label for a network-level failure."""
    for e in (exc, exc.__cause__, exc.__context__):
        if isinstance(e, ConnectionRefusedError):
            return "refused"
        if isinstance(e, ConnectionResetError):
            return "reset"
        if isinstance(e, TimeoutError | SMTPTimeoutError):
            return "timeout"
    if isinstance(exc, SMTPServerDisconnected):
        return "disconnected"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__
