"""One persistent SMTP submission session (aiosmtplib), reporting each message's outcome by stage.

Stages are those of ``stage.*`` metrics: connect, banner, ehlo, starttls, auth, mail, rcpt,
data (the DATA command) and dot (the final reply after the message). An SMTP reply other than
the expected one is a *rejection* (code, stage); a network error, a timeout or a failed TLS
handshake is a *failure* (error, stage). aiosmtplib connects and reads the greeting in one
call, so this session times them together as ``stage.banner``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

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

from bench.core.stages import StageTimes, timed
from bench.smtp.options import SessionOptions, tls_error
from bench.smtp.outcome import Outcome, error_name


class SmtpSession:
    """A persistent session to ``host:port``; reconnects on the next message after a failure."""

    def __init__(
        self, host: str, port: int, opts: SessionOptions, stages: StageTimes | None = None
    ) -> None:
        self.host, self.port, self.opts, self.stages = host, port, opts, stages
        self.timeout = opts.timeout
        self.client: SMTP | None = None
        self.stage = "connect"
        self.connects = 0
        self.connect_failures = 0
        self._on_conn = 0

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.is_connected

    def _timed(self, stage: str, since: int) -> int:
        return timed(self.stages, stage, since)

    async def _open(self) -> Outcome | None:
        self.stage = "connect"
        opts = self.opts
        client = SMTP(
            hostname=self.host,
            port=self.port,
            local_hostname=opts.ehlo,
            timeout=self.timeout,
            start_tls=False,
        )
        t = time.monotonic_ns()
        try:
            await client.connect(timeout=opts.greeting_timeout)
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
        t = self._timed("banner", t)  # aiosmtplib's connect includes the greeting
        try:
            bad = await self._handshake(client, t)
        except SMTPResponseException as exc:
            bad = Outcome("rejected", self.stage, exc.code, exc.message)
        except (ssl.SSLError, ssl.CertificateError) as exc:
            bad = Outcome("failed", self.stage, error=tls_error(exc))
        except (TimeoutError, SMTPException, OSError) as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ssl.SSLError | ssl.CertificateError):
                bad = Outcome("failed", self.stage, error=tls_error(cause))
            else:
                bad = Outcome("failed", self.stage, error=error_name(exc))
        except BaseException:
            client.close()
            raise
        if bad is not None:
            self.connect_failures += 1  # a connection that never became usable
            client.close()
            return bad
        self.client = client
        self._on_conn = 0
        self.connects += 1
        return None

    async def _handshake(self, client: SMTP, t: int) -> Outcome | None:
        """EHLO, STARTTLS and AUTH as the options ask; an outcome when one of them fails."""
        opts = self.opts
        self.stage = "ehlo"
        resp = await client.ehlo()
        if resp.code != 250:
            return Outcome("rejected", "ehlo", resp.code, resp.message)
        t = self._timed("ehlo", t)
        if opts.tls != "off":
            if client.supports_extension("starttls"):
                self.stage = "starttls"
                await client.starttls(
                    tls_context=opts.ssl_context(),
                    server_hostname=opts.server_name or self.host,
                )
                t = self._timed("starttls", t)
                self.stage = "ehlo"
                await client.ehlo()
                t = time.monotonic_ns()
            elif opts.tls == "required":
                return Outcome("failed", "starttls", error="starttls not offered")
        if opts.auth:
            self.stage = "auth"
            mech = opts.auth_mechanism.upper()
            offered = [m.lower() for m in client.server_auth_methods]
            if mech.lower() not in offered:
                why = f"auth {mech} not offered" if offered else "auth not offered"
                return Outcome("failed", "auth", error=why)
            login = client.auth_plain if mech == "PLAIN" else client.auth_login
            await login(opts.auth_user or "", opts.auth_password or "")
            self._timed("auth", t)
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
            out = await self._transaction(client, mail_from, rcpts, data)
            self._on_conn += 1
            cap = self.opts.max_per_connection
            if cap and self._on_conn >= cap:
                await self.quit()
            return out
        except SMTPResponseException as exc:
            self.close()
            return Outcome("rejected", self.stage, exc.code, exc.message)
        except (TimeoutError, SMTPException, OSError) as exc:
            self.close()
            return Outcome("failed", self.stage, error=error_name(exc))

    async def _transaction(
        self, client: SMTP, mail_from: str, rcpts: list[str], data: bytes
    ) -> Outcome:
        assert client.protocol is not None
        t = time.monotonic_ns()
        self.stage = "mail"
        size = b" SIZE=%d" % len(data) if client.supports_extension("size") else b""
        resp = await client.execute_command(b"MAIL", b"FROM:<" + mail_from.encode() + b">" + size)
        if resp.code != 250:
            await self._reset()
            return Outcome("rejected", "mail", resp.code, resp.message)
        t = self._timed("mail", t)
        self.stage = "rcpt"
        for rcpt in rcpts:
            resp = await client.execute_command(b"RCPT", b"TO:<" + rcpt.encode() + b">")
            if resp.code not in (250, 251):
                await self._reset()
                return Outcome("rejected", "rcpt", resp.code, resp.message)
            t = self._timed("rcpt", t)
        self.stage = "data"
        resp = await client.execute_command(b"DATA")
        if resp.code != 354:
            await self._reset()
            return Outcome("rejected", "data", resp.code, resp.message)
        t = self._timed("data", t)
        self.stage = "dot"
        client.protocol.write(data + b".\r\n")
        resp = await client.protocol.read_response(timeout=self.timeout)
        accepted_ns = self._timed("dot", t)
        if resp.code != 250:
            return Outcome("rejected", "dot", resp.code, resp.message)
        return Outcome("accepted", "dot", 250, accepted_ns=accepted_ns)

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
