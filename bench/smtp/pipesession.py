"""A generator session on the pipelined client: connect, greet, STARTTLS, AUTH, then messages.

Several callers may :meth:`PipelinedSession.send` at once: their messages share the connection
in order (that is what lets the body of one and the envelope of the next share a write). After
a failure the next send reconnects. With ``max_per_connection`` a connection that has taken its
share of messages is retired (QUIT once its last reply is in) and the next send opens another.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable

from bench.core.stages import StageTimes, timed
from bench.smtp.options import SessionOptions, auth_plain, b64line, tls_error
from bench.smtp.outcome import Outcome, error_name
from bench.smtp.pipeclient import STAGE_NAMES, Message, PipelinedProtocol, reply_text


class _StageFailed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class PipelinedSession:
    """A session to ``host:port`` with the options of *opts*; stage times go to *stages*."""

    def __init__(
        self,
        host: str,
        port: int,
        opts: SessionOptions,
        stages: StageTimes | None = None,
    ) -> None:
        self.host, self.port, self.opts, self.stages = host, port, opts, stages
        self.timeout = opts.timeout
        self.proto: PipelinedProtocol | None = None
        self.extensions: dict[str, str] = {}
        self.tls_active = False
        self.stage = "connect"
        self.connects = 0
        self.connect_failures = 0
        self._on_conn = 0  # messages submitted on the current connection
        self._opening: asyncio.Future[Outcome | None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self.proto is not None and self.proto.usable

    @property
    def sized(self) -> bool:
        """The server offers SIZE (RFC 1870): each MAIL FROM declares the message's size, so a
        server with a smaller limit refuses it there (552), before its body is sent."""
        return "SIZE" in self.extensions

    # -- opening -------------------------------------------------------------------------
    def _timed(self, stage: str, since: int) -> int:
        return timed(self.stages, stage, since)

    async def _open(self) -> Outcome | None:
        loop = asyncio.get_running_loop()
        proto = PipelinedProtocol(loop, self.timeout, self.stages)
        self.stage = "connect"
        t = time.monotonic_ns()
        try:
            async with asyncio.timeout(self.opts.greeting_timeout):
                await loop.create_connection(lambda: proto, self.host, self.port)
        except TimeoutError:
            self.connect_failures += 1
            return Outcome("failed", "connect", error="timeout")
        except OSError as exc:
            self.connect_failures += 1
            return Outcome("failed", "connect", error=error_name(exc))
        self._timed("connect", t)
        try:
            await self._greet(proto)
        except _StageFailed as failed:
            self.connect_failures += 1  # a connection that never became usable
            proto.abort()
            return failed.outcome
        self.proto = proto
        self._on_conn = 0
        self.connects += 1
        return None

    async def _ask(self, proto: PipelinedProtocol, stage: str, line: bytes, want: int) -> bytes:
        """Send *line* (b"" waits for the greeting) and return the reply's text, or raise
        :class:`_StageFailed` with the outcome labelled by *stage*."""
        self.stage = stage
        fut = proto.command(line)
        wait = self.opts.greeting_timeout if stage == "banner" else self.timeout
        try:
            async with asyncio.timeout(wait):
                code, text = await fut
        except TimeoutError:
            raise _StageFailed(Outcome("failed", stage, error="timeout")) from None
        except ConnectionError:
            err = proto.error or "disconnected"
            raise _StageFailed(Outcome("failed", stage, error=err)) from None
        if code != want:
            raise _StageFailed(Outcome("rejected", stage, code, reply_text(text)))
        return text

    async def _greet(self, proto: PipelinedProtocol) -> None:
        opts = self.opts
        t = time.monotonic_ns()
        await self._ask(proto, "banner", b"", 220)
        t = self._timed("banner", t)
        ehlo = b"EHLO " + opts.ehlo.encode() + b"\r\n"
        self.extensions = parse_ehlo(await self._ask(proto, "ehlo", ehlo, 250))
        t = self._timed("ehlo", t)
        self.tls_active = False
        if opts.tls != "off":
            if "STARTTLS" in self.extensions:
                await self._starttls(proto)
                t = self._timed("starttls", t)
                self.extensions = parse_ehlo(await self._ask(proto, "ehlo", ehlo, 250))
                t = time.monotonic_ns()
            elif opts.tls == "required":
                raise _StageFailed(Outcome("failed", "starttls", error="starttls not offered"))
        if opts.auth:
            await self._auth(proto)
            self._timed("auth", t)
        proto.pipelining = opts.pipelining and "PIPELINING" in self.extensions

    async def _starttls(self, proto: PipelinedProtocol) -> None:
        await self._ask(proto, "starttls", b"STARTTLS\r\n", 220)
        transport = proto.transport
        if transport is None:
            raise _StageFailed(Outcome("failed", "starttls", error=proto.error or "disconnected"))
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                new = await loop.start_tls(
                    transport,
                    proto,
                    self.opts.ssl_context(),
                    server_hostname=self.opts.server_name or self.host,
                )
        except TimeoutError:
            raise _StageFailed(Outcome("failed", "starttls", error="timeout")) from None
        except (ssl.SSLError, ssl.CertificateError) as exc:
            raise _StageFailed(Outcome("failed", "starttls", error=tls_error(exc))) from None
        except (OSError, RuntimeError) as exc:
            raise _StageFailed(Outcome("failed", "starttls", error=error_name(exc))) from None
        if new is None:
            raise _StageFailed(Outcome("failed", "starttls", error="disconnected"))
        proto.transport = new
        proto.buf = b""
        self.tls_active = True

    async def _auth(self, proto: PipelinedProtocol) -> None:
        opts = self.opts
        offered = self.extensions.get("AUTH")
        if offered is None:
            raise _StageFailed(Outcome("failed", "auth", error="auth not offered"))
        mech = opts.auth_mechanism.upper()
        if mech not in offered.upper().split():
            raise _StageFailed(Outcome("failed", "auth", error=f"auth {mech} not offered"))
        user, password = opts.auth_user or "", opts.auth_password or ""
        if mech == "PLAIN":
            await self._ask(proto, "auth", auth_plain(user, password), 235)
        else:
            await self._ask(proto, "auth", b"AUTH LOGIN\r\n", 334)
            await self._ask(proto, "auth", b64line(user), 334)
            await self._ask(proto, "auth", b64line(password), 235)

    # -- messages ------------------------------------------------------------------------
    async def send(self, mail_from: str, rcpts: list[str], data: bytes) -> Outcome:
        """Send one message; *data* must end with CRLF and need no dot-stuffing."""
        proto = self.proto
        while proto is None or not proto.usable:
            # One connection attempt serves every caller waiting for it (and when a capped
            # connection is full before this caller's turn, it waits for the next one).
            if self._opening is None:
                self._opening = asyncio.ensure_future(self._open())
            opening = self._opening
            try:
                bad = await asyncio.shield(opening)
            finally:
                if opening.done() and self._opening is opening:
                    self._opening = None
            if bad is not None:
                return bad
            proto = self.proto
        size = b" SIZE=%d" % len(data) if self.sized else b""
        cmds = [b"MAIL FROM:<" + mail_from.encode() + b">" + size + b"\r\n"]
        cmds += [b"RCPT TO:<" + r.encode() + b">\r\n" for r in rcpts]
        cmds.append(b"DATA\r\n")
        fut: asyncio.Future[Outcome] = proto.loop.create_future()
        m = Message(cmds, data + b".\r\n", fut, rcpts=len(rcpts))
        self._submit(proto, m)
        try:
            return await fut
        except asyncio.CancelledError:
            self.stage = STAGE_NAMES[m.stage]
            raise

    def submit_now(
        self, cmds: list[bytes], body: bytes, rcpts: int, done: Callable[[Message, Outcome], None]
    ) -> Message | None:
        """The generator's fast path: queue a message (*cmds* as made by
        :meth:`bench.core.message.MessageFactory.envelope`, *body* dot-terminated) on the open
        connection without a coroutine; *done* gets its outcome, called from the protocol's
        callbacks. Returns None, taking nothing, when the session is not :attr:`connected`."""
        proto = self.proto
        if proto is None or not proto.usable:
            return None
        m = Message(cmds, body, None, rcpts, done)
        self._submit(proto, m)
        return m

    def _submit(self, proto: PipelinedProtocol, m: Message) -> None:
        """Queue *m* on *proto*; a connection that has taken its share is retired."""
        proto.submit(m)
        self._on_conn += 1
        cap = self.opts.max_per_connection
        if cap and self._on_conn >= cap:
            self._retire()

    def _retire(self) -> None:
        """This connection takes no more messages: QUIT it once idle; the next send opens
        another."""
        proto, self.proto = self.proto, None
        if proto is not None:
            task = asyncio.ensure_future(_quit(proto, bounded=False))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    def close(self) -> None:
        if self.proto is not None:
            self.proto.abort()
            self.proto = None
        for task in self._retiring:
            task.cancel()

    async def quit(self) -> None:
        """QUIT when idle (bounded wait), then close."""
        if self.proto is not None:
            await _quit(self.proto)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)
        self.close()


async def _quit(proto: PipelinedProtocol, bounded: bool = True) -> None:
    """QUIT *proto* once its replies are in, then abort it. A retired connection waits as long
    as its replies keep coming (the protocol's own timeout ends a stall); the final QUIT of a
    run waits at most 2 s."""
    if proto.transport is not None:
        with contextlib.suppress(TimeoutError, ConnectionError):
            if proto.expect or proto.waiting:
                proto.idle = proto.loop.create_future()
                await asyncio.wait(
                    (proto.idle, proto.closed),
                    timeout=2 if bounded else None,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            if proto.transport is not None and not proto.expect:
                async with asyncio.timeout(2):
                    await proto.command(b"QUIT\r\n")
    proto.abort()


def parse_ehlo(text: bytes) -> dict[str, str]:
    """EHLO reply lines (after the greeting line) as {KEYWORD: parameters}."""
    out: dict[str, str] = {}
    for line in text.split(b"\n")[1:]:
        word, _, rest = line.decode("ascii", "replace").strip().partition(" ")
        if word:
            out[word.upper()] = rest
    return out
