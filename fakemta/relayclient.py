"""The relay's SMTP client for one-recipient messages: pipelined (RFC 2920), one connection.

aiosmtplib spends four round trips, four writes and an address parse on a message; profiled at
2,600 msgs/s it was 42 % of the fake MTA's process. Here, when the server offers PIPELINING,
MAIL, RCPT and DATA go out in one write and the body in one more, so a message costs two round
trips and two writes; without it the commands go one at a time. Replies (multi-line too) are
matched to commands strictly in order, read as the generator's pipelined client reads them
(:class:`bench.smtp.replies.ReplyReader`): a line that is no reply ends the connection
("protocol"). A refused MAIL or RCPT ends the transaction: a DATA answered 354 anyway is ended
empty, and a RSET follows any refusal (if the RSET fails, the connection is closed and the
refusal still stands). A server that refuses EHLO is greeted with HELO. A failed connection is
labelled as the generator labels its own (:func:`bench.smtp.outcome.error_name`).
"""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass

from bench.smtp.outcome import error_name
from bench.smtp.replies import ProtocolError, ReplyReader

Reply = tuple[int, bytes]  # the code, and the text (bench.smtp.replies.ReplyReader._raw_text)


@dataclass(frozen=True, slots=True)
class Sent:
    """What became of one message: ``code`` 250 (taken), another reply code with its
    ``stage`` (mail, rcpt, data, dot), or 0 with an ``error`` (the connection failed)."""

    code: int
    stage: str = ""
    error: str = ""


class _Replies(ReplyReader, asyncio.Protocol):
    """Reads replies and hands each to the oldest waiting future."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.lines: list[bytes] = []
        self.waiting: collections.deque[asyncio.Future[Reply]] = collections.deque()
        self.error = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            for line in self._reply_lines(data):
                if not self._reply_ends(line):
                    continue
                text = self._raw_text(line)
                if self.lines:
                    self.lines = []
                if self.waiting:
                    fut = self.waiting.popleft()
                    if not fut.done():
                        fut.set_result((int(line[:3]), text))
        except ProtocolError:
            # Not a reply: matching what follows to the commands would be guesswork
            # (a stray line would shift every later reply onto the wrong command).
            self.error = "protocol"
            _abort(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.error = self.error or ("reset" if isinstance(exc, ConnectionResetError) else "")
        while self.waiting:
            fut = self.waiting.popleft()
            if not fut.done():
                fut.set_exception(ConnectionError(self.error or "disconnected"))
                fut.exception()  # an await still raises it; no one awaiting is no warning

    def expect(self) -> asyncio.Future[Reply]:
        fut: asyncio.Future[Reply] = self.loop.create_future()
        self.waiting.append(fut)
        return fut


class RelayConnection:
    """One connection to ``host:port``; :meth:`send` one message at a time."""

    def __init__(self, host: str, port: int, hostname: str, timeout: float) -> None:
        self.host, self.port, self.hostname, self.timeout = host, port, hostname, timeout
        self._p: _Replies | None = None
        self.pipelining = False

    @property
    def usable(self) -> bool:
        return self._p is not None and self._p.transport is not None

    def close(self) -> None:
        if self._p is not None:
            _abort(self._p)
        self._p = None

    async def _ask(self, p: _Replies, line: bytes) -> Reply:
        if line:
            _write(p, line)
        fut = p.expect()
        async with asyncio.timeout(self.timeout):
            return await fut

    async def _open(self) -> Sent | None:
        loop = asyncio.get_running_loop()
        p = _Replies(loop)
        greeting = p.expect()  # before the connection exists: the greeting may come at once
        try:
            async with asyncio.timeout(self.timeout):
                await loop.create_connection(lambda: p, self.host, self.port)
                code, _ = await greeting
            if code != 220:
                _abort(p)
                return Sent(code, "banner")
            code, text = await self._ask(p, b"EHLO " + self.hostname.encode() + b"\r\n")
            if code not in {250, 421}:  # an old server: HELO, and no extensions
                code, _ = await self._ask(p, b"HELO " + self.hostname.encode() + b"\r\n")
                text = b""
        except BaseException:  # a timeout or a drop half-way: nothing is left open
            _abort(p)
            raise
        if code != 250:
            _abort(p)
            return Sent(code, "ehlo")
        self.pipelining = b"PIPELINING" in text.upper()
        self._p = p
        return None

    async def send(self, mail_from: str, rcpt: str, body: bytes) -> Sent:
        """Send one message; *body* is dot-stuffed and ends with CRLF (no final dot)."""
        try:
            if not self.usable:
                failed = await self._open()
                if failed is not None:
                    return failed
            assert self._p is not None
            sent = await self._transaction(self._p, mail_from, rcpt, body)
        except OSError as exc:  # a timeout too
            self.close()
            return Sent(0, error=_label(exc))
        if sent.code == 421:
            self.close()
        return sent

    async def _transaction(self, p: _Replies, mail_from: str, rcpt: str, body: bytes) -> Sent:
        cmds = (
            b"MAIL FROM:<" + mail_from.encode() + b">\r\n",
            b"RCPT TO:<" + rcpt.encode() + b">\r\n",
            b"DATA\r\n",
        )
        if self.pipelining:
            _write(p, b"".join(cmds))
            futs = [p.expect() for _ in cmds]
            async with asyncio.timeout(self.timeout):
                replies = [await f for f in futs]
        else:
            replies = []
            for cmd in cmds:
                replies.append(await self._ask(p, cmd))
                if replies[-1][0] not in (250, 251):
                    break
        refused: Sent | None = None
        for (code, _), stage in zip(replies[:2], ("mail", "rcpt"), strict=False):
            if code not in (250, 251):
                refused = Sent(code, stage)
                break
        if len(replies) == 3 and replies[2][0] == 354:
            if refused is None:  # not body + b".\r\n": a second copy of a big message
                _write(p, body)
            code, _ = await self._ask(p, b".\r\n")
            if refused is None and code == 250:
                return Sent(250)
            refused = refused or Sent(code, "dot")
        refused = refused or Sent(replies[-1][0], "data")
        if refused.code != 421:
            # The refusal is the outcome whatever becomes of the RSET: a server may hang up
            # after a 5xx, and the message must then bounce (or be deferred) on its code, not
            # be retried as if the connection had failed.
            try:
                code, _ = await self._ask(p, b"RSET\r\n")
            except (TimeoutError, OSError):
                code = 0
            if code != 250:
                self.close()
        return refused


def _abort(p: _Replies) -> None:
    if p.transport is not None:
        p.transport.abort()


def _label(exc: OSError) -> str:
    """A short, stable name for a network failure (the relay's error counts use it): what the
    connection saw ("disconnected", "reset", "protocol"), or the generator's label."""
    if type(exc) is ConnectionError:  # raised here
        return str(exc)
    return error_name(exc)


def _write(p: _Replies, data: bytes) -> None:
    """Write, or raise at once when the connection is gone (no reply would ever come)."""
    if p.transport is None:
        raise ConnectionError(p.error or "disconnected")
    p.transport.write(data)
