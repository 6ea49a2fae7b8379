"""A small pipelined SMTP client for the hot path (RFC 2920), as an ``asyncio.Protocol``.

aiosmtplib sends one command and waits for its reply; at load-test rates that round trip per
command is the generator's limit (see docs/performance.md). When the server
advertises PIPELINING this client writes a message's envelope (MAIL, RCPT…, DATA) in one write,
and the body together with the *next* message's envelope in the next, so a message costs one
round trip. Replies are matched to messages strictly in order. Without PIPELINING it sends one
command at a time. Outcomes and stages are those of :mod:`bench.smtp.aiosession`.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable
from typing import cast

from bench.core.stages import StageTimes
from bench.smtp.outcome import Outcome
from bench.smtp.replies import ProtocolError, ReplyReader, reply_text

__all__ = ["STAGE_NAMES", "Message", "PipelinedProtocol", "ProtocolError", "reply_text"]

# Reply kinds a message expects, in order.
MAIL, RCPT, DATA, DOT, ABORT, RSET = range(6)
STAGE_NAMES = ("mail", "rcpt", "data", "dot", "dot", "mail")


class Message:
    """One message in flight on a connection. Its outcome goes to *done* (called from the
    protocol's callbacks: the generator's fast path) or, without one, to *fut*."""

    __slots__ = (
        "bad",
        "body",
        "cmds",
        "done",
        "fut",
        "rcpts",
        "rcpts_left",
        "sent_cmds",
        "stage",
        "t_last",
    )

    def __init__(
        self,
        cmds: list[bytes],
        body: bytes,
        fut: asyncio.Future[Outcome] | None = None,
        rcpts: int = 1,
        done: Callable[[Message, Outcome], None] | None = None,
    ) -> None:
        self.cmds = cmds  # MAIL, RCPT…, DATA
        self.body = body  # dot-terminated
        self.fut = fut
        self.done = done
        self.stage = MAIL
        self.sent_cmds = 0
        self.bad: Outcome | None = None
        self.rcpts = rcpts
        self.rcpts_left = 0  # RCPT replies still awaited before DATA may go (several recipients)
        self.t_last = 0  # when its last command went out or its last reply came (monotonic ns)


class PipelinedProtocol(ReplyReader, asyncio.Protocol):
    """Matches replies to messages (read as :class:`bench.smtp.replies.ReplyReader` reads
    them); writes envelopes and bodies as replies allow."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float,
        stages: StageTimes | None = None,
    ) -> None:
        self.loop = loop
        self.timeout = timeout
        self.stages = stages
        self.transport: asyncio.Transport | None = None
        self.pipelining = False
        self.buf = b""
        self.lines: list[bytes] = []
        self.expect: collections.deque[tuple[Message | None, int]] = collections.deque()
        self.waiting: collections.deque[Message] = collections.deque()
        self.data_pending = False  # DATA sent, 354 not yet seen: nothing else may be written
        self.out: list[bytes] = []
        # The greeting can arrive before anyone asks for it: wait for it from the start.
        self.handshake: asyncio.Future[tuple[int, bytes]] | None = loop.create_future()
        self.banner = self.handshake
        self.closed: asyncio.Future[None] = loop.create_future()
        self.error = ""
        self.now = time.monotonic_ns()  # when the data being handled arrived
        self.last_progress = self.now
        self._timer: asyncio.TimerHandle | None = None
        self._flush_scheduled = False
        self.reading = False  # inside data_received: it flushes when done
        self.closing = False  # abort() has begun
        self.idle: asyncio.Future[None] | None = None  # set when no reply is awaited

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if not self.error:
            self.error = "reset" if isinstance(exc, ConnectionResetError) else "disconnected"
        self._fail_all(self.error)
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_exception(ConnectionError(self.error))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.now = time.monotonic_ns()  # one clock read serves every reply in this chunk
        try:
            lines = self._reply_lines(data)
        except ProtocolError:
            self.error = "protocol"
            self.abort()
            return
        self.reading = True  # messages submitted from reply callbacks join this chunk's write
        try:
            if self.handshake is None and not self.lines:
                lines = self._hot_replies(lines)
            for line in lines:
                if self._reply_ends(line):  # else a continuation line, kept
                    self._reply(int(line[:3]), line)
        except ProtocolError:
            self.error = "protocol"
            self.abort()
            return
        finally:
            self.reading = False
        self.flush()

    def _hot_replies(self, lines: list[bytes]) -> list[bytes]:
        """Take the leading replies of *lines* that are the hot path's own — a single-line 250
        to MAIL, RCPT or the end of data, or 354 to DATA — inline; return the rest for the
        general path. Same effect as :meth:`_reply` for each, with less work per reply."""
        expect = self.expect
        now = self.now
        msg_st = self.stages.message if self.stages is not None else None
        i = 0
        for line in lines:
            head = line[:4]
            if not expect or head not in {b"250 ", b"354 "}:
                break
            m, kind = expect[0]
            if m is None or kind == ABORT or (head == b"354 ") != (kind == DATA):
                break
            expect.popleft()
            i += 1
            if msg_st is not None:
                msg_st[kind].record(now - m.t_last)
                m.t_last = now
            if kind == DOT:
                self._finish(m, Outcome("accepted", "dot", 250, accepted_ns=now))
            elif kind == DATA:
                self._data_taken(m)
            elif m.rcpts_left or not self.pipelining:  # MAIL or RCPT taken
                self._envelope_reply(m, kind)
        if i:
            self.last_progress = now
            if not expect and not self.waiting and self.idle and not self.idle.done():
                self.idle.set_result(None)
        return lines[i:] if i else lines

    # -- replies -------------------------------------------------------------------------
    def _text(self, last: bytes) -> str:
        """The text of the reply ending with line *last* (lines joined by "\\n")."""
        return reply_text(self._raw_text(last))

    def _reply(self, code: int, last: bytes) -> None:
        self.last_progress = self.now
        if self.handshake is not None:
            fut, self.handshake = self.handshake, None
            text = self._raw_text(last)
            self.lines = []
            if not fut.done():
                fut.set_result((code, text))
            return
        if code == 421:  # the server is going away: nothing more is sent here
            self.error = "disconnected"
            self.closing = True
        try:
            if not self.expect:  # (an idle timeout, a shutdown)
                return
            m, kind = self.expect.popleft()
            if m is not None:
                self._message_reply(m, kind, code, last)
        finally:
            if self.lines:
                self.lines = []
        if code == 421:
            self.abort()
        elif not self.expect and not self.waiting and self.idle and not self.idle.done():
            self.idle.set_result(None)

    def _message_reply(self, m: Message, kind: int, code: int, last: bytes) -> None:
        st = self.stages
        if st is not None and kind != ABORT:
            now = self.now
            st.message[kind].record(now - m.t_last)
            m.t_last = now
        if kind == DOT:
            if code == 250:
                self._finish(m, Outcome("accepted", "dot", 250, accepted_ns=self.now))
            else:
                self._finish(m, Outcome("rejected", "dot", code, self._text(last)))
        elif kind == DATA:
            if code == 354:
                self._data_taken(m)
            else:
                self._abandon(m, m.bad or Outcome("rejected", "data", code, self._text(last)))
        elif kind == ABORT:
            self._finish(m, m.bad or Outcome("rejected", "dot", code, self._text(last)))
        else:  # MAIL, RCPT
            if code not in {250, 251} and m.bad is None:
                m.bad = Outcome("rejected", STAGE_NAMES[kind], code, self._text(last))
            if m.rcpts_left or not self.pipelining:
                self._envelope_reply(m, kind)

    def _envelope_reply(self, m: Message, kind: int) -> None:
        """A reply to *m*'s MAIL or RCPT when more than the envelope waits on it: one command
        at a time (no PIPELINING), or DATA held until every recipient has answered."""
        if m.rcpts_left:
            if kind == RCPT:
                m.rcpts_left -= 1
                if m.rcpts_left:
                    return
                if m.bad is not None:  # every recipient has answered, and one said no
                    self._abandon(m, m.bad)
                else:
                    self._send_next_cmd(m)  # DATA
        elif m.bad is not None:
            self._abandon(m, m.bad)
        else:
            self._send_next_cmd(m)

    def _abandon(self, m: Message, outcome: Outcome) -> None:
        """*m* ends refused before any of its content went out (its MAIL, a recipient or its
        DATA was refused): RSET, so nothing of it reaches anyone, as with aiosmtplib."""
        self.data_pending = False
        # RSET first: *done* callbacks may submit (and so write) the next message.
        self.out.append(b"RSET\r\n")
        self.expect.append((None, RSET))
        self._finish(m, outcome)
        self._pump()

    def _data_taken(self, m: Message) -> None:
        """354 to *m*'s DATA: its body goes out (or, when its only recipient was refused, a
        lone dot that ends it), then whatever envelope waited for this 354."""
        self.data_pending = False
        m.stage = DOT
        if m.bad is None:
            self.out.append(m.body)
            self.expect.append((m, DOT))
        else:  # no recipient taken (its only one refused), yet DATA was: a lone dot (RFC 2920)
            self.out.append(b".\r\n")
            self.expect.append((m, ABORT))
        self._pump()

    def _finish(self, m: Message, outcome: Outcome) -> None:
        """Hand *m* its outcome. A *done* callback runs at once and may submit the next
        message, so callers write whatever must precede it first."""
        done = m.done
        if done is not None:
            m.done = None
            done(m, outcome)
        elif m.fut is not None and not m.fut.done():
            m.fut.set_result(outcome)

    @property
    def usable(self) -> bool:
        """Open and not being aborted: a message submitted now will be sent."""
        return self.transport is not None and not self.closing

    # -- sending -------------------------------------------------------------------------
    def submit(self, m: Message) -> None:
        """Queue *m*; its envelope goes out as soon as no DATA is waiting for its 354."""
        if not self.reading:  # from a reply callback, the chunk's arrival time is now
            self.now = time.monotonic_ns()
        if not self.expect:  # the timeout counts from now, not from the last reply
            self.last_progress = self.now
        if not self.usable:
            self._finish(m, Outcome("failed", "mail", error=self.error or "disconnected"))
            return
        self.waiting.append(m)
        self._pump()
        if not self._flush_scheduled and not self.reading:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)
        self._arm()

    def _pump(self) -> None:
        while self.waiting and not self.data_pending:
            m = self.waiting.popleft()
            self.data_pending = True
            m.t_last = self.now
            if self.pipelining and m.rcpts == 1:
                self.out.extend(m.cmds)
                m.sent_cmds = len(m.cmds)
                exp = self.expect
                exp.append((m, MAIL))
                exp.append((m, RCPT))
                exp.append((m, DATA))
            elif self.pipelining:
                # Several recipients: DATA waits for their replies. Were one refused after
                # DATA went out, the server could take DATA for the others, and the message
                # would reach them (empty, or whole) although it is booked as refused.
                self.out.extend(m.cmds[:-1])
                m.sent_cmds = len(m.cmds) - 1
                m.rcpts_left = m.rcpts
                exp = self.expect
                exp.append((m, MAIL))
                for _ in range(m.rcpts):
                    exp.append((m, RCPT))
            else:
                self._send_next_cmd(m)

    def _send_next_cmd(self, m: Message) -> None:
        i = m.sent_cmds
        if i >= len(m.cmds):
            return
        m.sent_cmds = i + 1
        m.t_last = self.now
        self.out.append(m.cmds[i])
        kind = MAIL if i == 0 else DATA if i == len(m.cmds) - 1 else RCPT
        m.stage = kind
        self.expect.append((m, kind))

    def flush(self) -> None:
        self._flush_scheduled = False
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def command(self, line: bytes) -> asyncio.Future[tuple[int, bytes]]:
        """Send one command outside any message (EHLO, QUIT); the future gets its reply."""
        if not line:
            return self.banner
        fut: asyncio.Future[tuple[int, bytes]] = self.loop.create_future()
        self.handshake = fut
        if self.transport is not None:
            self.transport.write(line)
        return fut

    # -- failure -------------------------------------------------------------------------
    def _arm(self) -> None:
        if self._timer is None:
            self._timer = self.loop.call_later(self.timeout, self._check_timeout)

    def _check_timeout(self) -> None:
        self._timer = None
        if not self.expect and not self.waiting:
            return
        idle = (time.monotonic_ns() - self.last_progress) / 1e9
        if idle >= self.timeout:
            self.error = "timeout"
            self.abort()
        else:
            self._timer = self.loop.call_later(self.timeout - idle, self._check_timeout)

    def abort(self) -> None:
        self.closing = True
        self._fail_all(self.error or "disconnected")
        if self.transport is not None:
            self.transport.abort()

    def _fail_all(self, error: str) -> None:
        for m, kind in self.expect:
            if m is not None:  # a refusal already read (e.g. 421 at MAIL) is what happened
                self._finish(m, m.bad or Outcome("failed", STAGE_NAMES[kind], error=error))
        for m in self.waiting:
            self._finish(m, Outcome("failed", "mail", error=error))
        self.expect.clear()
        self.waiting.clear()
        self.data_pending = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
