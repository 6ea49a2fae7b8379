"""One persistent SMTP submission session (aiosmtplib), reporting each message's outcome by stage.

Stages are those of ``stage.*`` metrics: connect, banner, ehlo, mail, rcpt, data (the DATA
command) and dot (the final reply after the message). An SMTP reply other than the expected one
is a *rejection* (code, stage); a network error or timeout is a *failure* (error, stage).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Protocol

from aiosmtplib import (
    SMTP,
    SMTPConnectError,
    SMTPConnectResponseError,
    SMTPConnectTimeoutError,
    SMTPException,
    SMTPResponseException,
    SMTPServerDisconnected,
    SMTPTimeoutError,
)


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


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message: accepted (with the time of the 250), rejected or failed."""

    kind: str  # "accepted" | "rejected" | "failed"
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


class SmtpSession:
    """A persistent session to ``host:port``; reconnects on the next message after a failure."""

    def __init__(self, host: str, port: int, *, ehlo: str, timeout: float) -> None:
        self.host, self.port, self.ehlo, self.timeout = host, port, ehlo, timeout
        self.client: SMTP | None = None
        self.stage = "connect"
        self.connects = 0
        self.connect_failures = 0

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    async def _open(self) -> Outcome | None:
        self.stage = "connect"
        client = SMTP(
            hostname=self.host,
            port=self.port,
            local_hostname=self.ehlo,
            timeout=self.timeout,
            start_tls=False,
        )
        try:
            await client.connect()
        except SMTPConnectResponseError as exc:
            self.connect_failures += 1
            client.close()
            return Outcome("rejected", "banner", exc.code, exc.message)
        except SMTPConnectTimeoutError as exc:
            # aiosmtplib says "connect" for both; its cause tells TCP from the greeting.
            self.connect_failures += 1
            client.close()
            stage = "banner" if isinstance(exc.__cause__, SMTPTimeoutError) else "connect"
            return Outcome("failed", stage, error="timeout")
        except SMTPConnectError as exc:
            self.connect_failures += 1
            client.close()
            if isinstance(exc.__cause__, SMTPServerDisconnected):
                return Outcome("failed", "banner", error="disconnected")
            return Outcome("failed", "connect", error=error_name(exc))
        except (SMTPException, OSError) as exc:
            self.connect_failures += 1
            client.close()
            return Outcome("failed", "banner", error=error_name(exc))
        self.stage = "ehlo"
        try:
            resp = await client.ehlo()
        except BaseException:
            client.close()
            raise
        if resp.code != 250:
            client.close()
            return Outcome("rejected", "ehlo", resp.code, resp.message)
        self.client = client
        self.connects += 1
        return None

    async def _reset(self) -> None:
        if self.client is None:
            return
        try:
            await self.client.rset()
        except (SMTPException, OSError):
            self.close()

    async def send(self, mail_from: str, rcpts: list[str], data: bytes) -> Outcome:
        """Send one message; *data* must end with CRLF and need no dot-stuffing."""
        try:
            if not self.connected:
                bad = await self._open()
                if bad is not None:
                    return bad
            client = self.client
            assert client is not None and client.protocol is not None
            self.stage = "mail"
            resp = await client.execute_command(b"MAIL", b"FROM:<" + mail_from.encode() + b">")
            if resp.code != 250:
                await self._reset()
                return Outcome("rejected", "mail", resp.code, resp.message)
            self.stage = "rcpt"
            for rcpt in rcpts:
                resp = await client.execute_command(b"RCPT", b"TO:<" + rcpt.encode() + b">")
                if resp.code not in (250, 251):
                    await self._reset()
                    return Outcome("rejected", "rcpt", resp.code, resp.message)
            self.stage = "data"
            resp = await client.execute_command(b"DATA")
            if resp.code != 354:
                await self._reset()
                return Outcome("rejected", "data", resp.code, resp.message)
            self.stage = "dot"
            client.protocol.write(data + b".\r\n")
            resp = await client.protocol.read_response(timeout=self.timeout)
            accepted_ns = time.monotonic_ns()
            if resp.code != 250:
                return Outcome("rejected", "dot", resp.code, resp.message)
            return Outcome("accepted", "dot", 250, accepted_ns=accepted_ns)
        except SMTPResponseException as exc:
            self.close()
            return Outcome("rejected", self.stage, exc.code, exc.message)
        except (TimeoutError, SMTPException, OSError) as exc:
            self.close()
            return Outcome("failed", self.stage, error=error_name(exc))

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def quit(self) -> None:
        """End the session politely (QUIT), or just close it if that fails."""
        if self.connected and self.client is not None:
            with contextlib.suppress(TimeoutError, SMTPException, OSError):
                await asyncio.wait_for(self.client.quit(), timeout=2)
        self.close()
