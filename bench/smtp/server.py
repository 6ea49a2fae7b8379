"""A plain ``asyncio.Protocol`` SMTP server (works on uvloop): the post office's hot path, and
the fake MTA's submission port when nothing needs aiosmtpd.

aiosmtpd spends its time in machinery, not in SMTP: a ``StreamReader.readuntil`` per body
line, a ``drain()`` per reply, coroutine switches per command. Here each ``data_received``
chunk is handled synchronously: every complete command line in it is answered in order, the
replies of the chunk go out in ONE ``transport.write`` (pipelined clients send a whole group
at once, so one write answers it), and a body is found with one ``bytes.find`` of
``CRLF.CRLF`` over the whole buffer and dot-unstuffed with one ``replace`` (one spanning chunks is
gathered by :class:`bench.smtp.body.Body`). The clock is read once per chunk.

Replies follow aiosmtpd's (the reference, see tests/observe/test_fastpost.py) in codes and wording,
with RFC 3463 enhanced codes (ENHANCEDSTATUSCODES is advertised), and Postfix's limits and wording
where a client asks too much (:mod:`bench.smtp.limits`, kept by aiosmtpd's path too), each a
comparison. Unlike aiosmtpd: body lines are not limited in length (only the message is); the idle
timeout counts any received bytes and says 421; unknown commands are not echoed back.

Policy is a handler with aiosmtpd's hooks, so that one handler serves this server and aiosmtpd
(:class:`bench.smtp.aioserver.FastSMTP`) alike: ``handle_`` + a command of
:data:`bench.smtp.replies.HOOKS`, looked up once per server (by :func:`server_factory`) and called
as aiosmtpd calls them, ``(server, session, envelope, *args)``, once the command has passed the
server's own checks, for the reply's text (EHLO: its lines); without one, this server's default.
As in aiosmtpd, taking a sender sets ``envelope.mail_from`` and taking a recipient appends it to
``envelope.rcpt_tos``. A hook is a plain function, or a coroutine function that never waits; one
that raises is answered 500. ``server.arrival_ns`` is when the command's chunk was read
(monotonic ns). The :class:`Envelope` is the connection's own, reset rather than replaced after
each transaction (a message costs no objects of its own): a hook copies what it keeps.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, cast

from bench.smtp.body import Body, release_soon
from bench.smtp.limits import DEFAULT_LIMITS, Limits
from bench.smtp.replies import (
    BAD_SYNTAX,
    BYE,
    CANNOT_VRFY,
    GO_AHEAD,
    GOODBYE,
    MAIL_OK,
    NEED_HELO,
    NEED_MAIL,
    NEED_RCPT,
    NESTED,
    NOT_ASCII,
    NUL_REPLY,
    OK,
    RCPT_OK,
    RCPT_PARAMS,
    SYNTAX_ERROR,
    TOO_LONG,
    TOO_MANY_RCPTS,
    TOO_MANY_RCPTS_COUNTED,
    TOO_MUCH,
    UNKNOWN,
    Envelope,
    Hook,
    Refusal,
    Server,
    Session,
    Shared,
    envelope_arg,
    mail_params_refused,
    other_reply,
    params,
    reply_line,
    vrfy_arg,
)

# fmt: off
__all__ = ["DATA_SIZE_DEFAULT", "LINE_BUFFER_LIMIT", "Envelope", "FastServerProtocol", "Limits",
           "Server", "Session", "server_factory"]
# fmt: on

DATA_SIZE_DEFAULT = DEFAULT_LIMITS.message_size  # Postfix's message_size_limit
LINE_BUFFER_LIMIT = DEFAULT_LIMITS.line_length + 1  # a partial command line kept at most
BOGUS_LIMIT = 5  # the 5th unknown command closes the connection, as in aiosmtpd

log = logging.getLogger(__name__)
_now = time.monotonic_ns


class FastServerProtocol(asyncio.Protocol):
    """One SMTP connection; see the module docstring."""

    # fmt: off
    __slots__ = (
        "_body", "_bogus", "_closing", "_env", "_errors", "_extended", "_helo", "_in_data", "_over",
        "_pending", "_s", "_session", "_skipping", "_timer", "_transport", "arrival_ns",
    )
    # fmt: on

    def __init__(self, shared: Shared) -> None:
        self._s = shared
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pending = b""  # a partial command line (at most the line length and its CR)
        self._body: Body | None = None  # a body spanning chunks
        self._in_data = self._skipping = self._closing = False
        self._helo = self._extended = False  # what the session says, kept at hand
        self._session = Session(None)
        self._env = Envelope()
        self.arrival_ns = 0
        self._bogus = BOGUS_LIMIT
        self._errors = shared.errors  # error replies left before the connection is closed
        self._over = 0  # recipients refused in this transaction for the limit

    # -- transport events --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        self._session.peer = transport.get_extra_info("peername")
        self.arrival_ns = _now()
        transport.write(self._s.greeting)
        self._timer = asyncio.get_running_loop().call_later(self._s.timeout, self._on_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        # A message not yet ended by its dot is dropped: no hook call.
        self._transport, self._body, self._in_data = None, None, False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def pause_writing(self) -> None:
        # A client that sends commands without reading the replies: stop reading from it.
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    def _on_timer(self) -> None:
        """Idle timeout: re-armed lazily, so that traffic costs no timer handling."""
        t = self._transport
        if t is None or t.is_closing():
            return
        idle = (_now() - self.arrival_ns) / 1e9
        if idle >= self._s.timeout - 0.001:
            t.write(self._s.timed_out)
            t.close()
            return
        self._timer = asyncio.get_running_loop().call_later(self._s.timeout - idle, self._on_timer)

    def data_received(self, data: bytes) -> None:
        self.arrival_ns = _now()
        out: list[bytes] = []
        if self._pending:
            data, self._pending = self._pending + data, b""
        pos, end, longest = 0, len(data), self._s.raw_line
        while pos < end and not self._closing:  # every pass consumes >= 1 byte or stops
            if self._in_data:
                pos = self._data(data, pos, out)
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                if not self._skipping:
                    if end - pos > longest:
                        self._skipping = True  # drop it all; answer once the line ends
                    else:
                        self._pending = data[pos:]
                break
            if self._skipping or nl - pos > longest:  # too long, whatever it says
                self._skipping = False
                reply = TOO_LONG
            else:
                try:
                    reply = self._command(data[pos:nl].rstrip(b"\r"))
                except Exception as exc:  # a failing hook, as in aiosmtpd: a 500, not a crash
                    reply = _failed(exc)
            out.append(reply)
            if type(reply) is Refusal:  # the server's own error: one fewer left
                self._refused(out)
            pos = nl + 1
        t = self._transport
        if t is not None:
            if out:
                t.write(b"".join(out))
            if self._closing:
                t.close()

    def _refused(self, out: list[bytes]) -> None:
        """An error reply of the server's own went out: past the limit, 421 and close."""
        self._errors -= 1
        if self._errors < 1 and not self._closing:
            out.append(self._s.too_many_errors)
            self._closing = True

    # -- DATA --------------------------------------------------------------------------
    def _data(self, data: bytes, pos: int, out: list[bytes]) -> int:
        """Take body bytes from data[pos:]; return where the commands resume."""
        body = self._body
        if body is None:  # the common case: the whole body is in this chunk
            if data.startswith(b".\r\n", pos):
                out.append(self._deliver(b"", 0))
                return pos + 3
            i = data.find(b"\r\n.\r\n", pos)
            if i >= 0:
                raw = data[pos : i + 2]
                content = raw.replace(b"\r\n.", b"\r\n")
                if content[:1] == b".":
                    content = content[1:]
                out.append(self._deliver(content, len(raw)))
                return i + 5
            body = self._body = Body(self._s.limit)
        chunk = data[pos:] if pos else data
        end = body.feed(chunk)
        if end < 0:
            return len(data)
        size = body.size  # over the limit when there is no content
        out.append(self._deliver(body.content() or b"", size))
        release_soon(size)  # once this message's buffers are gone
        return pos + end

    def _deliver(self, content: bytes, raw_size: int) -> bytes:
        """End of DATA: the DATA hook has the message (if not too big); reset the envelope."""
        self._in_data = False
        self._body = None
        s, env = self._s, self._env
        if raw_size > s.limit:
            reply = TOO_MUCH
        elif s.on_data is None:
            reply = OK
        else:
            env.content = env.original_content = content
            try:
                reply = s.wire[s.on_data(self, self._session, env)]
            except Exception as exc:  # as in aiosmtpd: a 500, not a crash
                reply = _failed(exc)
        self._reset()
        return reply

    def _reset(self) -> None:
        """A new transaction (aiosmtpd's ``_set_rset_state``), in the same envelope."""
        env = self._env
        env.mail_from = env.content = env.original_content = None
        if self._over:
            self._over = 0
        if env.rcpt_tos:
            env.rcpt_tos.clear()
        if env.mail_options:
            env.mail_options.clear()
        if env.rcpt_options:
            env.rcpt_options.clear()

    # -- commands ----------------------------------------------------------------------
    def _command(self, line: bytes) -> bytes:
        """The reply to one command line (without its line end), in aiosmtpd's order."""
        if not line:
            return BAD_SYNTAX
        verb, _, argb = line.partition(b" ")
        if not verb.isascii():
            return BAD_SYNTAX
        command = verb.upper().decode("ascii")
        arg: str | None = None
        if argb:
            argb = argb.strip()
            if not argb.isascii():
                return NOT_ASCII
            arg = argb.decode("ascii")
        if 0 in line and command in NUL_REPLY:  # (a NUL in a verb makes an unknown one)
            return NUL_REPLY[command]
        if command == "MAIL":
            return self._mail(arg)
        if command == "RCPT":
            return self._rcpt(arg)
        if command == "DATA":
            if not self._helo:
                return NEED_HELO
            if not self._env.rcpt_tos:
                return NEED_RCPT
            if arg:
                return reply_line("501 5.5.4 Syntax: DATA")
            self._in_data = True
            return GO_AHEAD
        if command in ("EHLO", "HELO"):
            return self._hello(command, arg)
        if command in ("RSET", "QUIT", "STARTTLS") and arg:
            return reply_line(f"501 5.5.4 Syntax: {command}")
        if command == "RSET":
            self._reset()
            return self._answer(self._s.on_rset, OK)
        if command == "QUIT":
            self._closing = True
            return self._answer(self._s.on_quit, BYE)
        if command == "NOOP":
            return self._answer(self._s.on_noop, OK, arg)
        return self._rare(command, arg)

    def _answer(self, hook: Hook | None, default: bytes, *args: Any) -> bytes:
        """The reply from a hook that only answers (RSET, QUIT, NOOP, VRFY), or *default*."""
        return (
            default if hook is None else self._s.wire[hook(self, self._session, self._env, *args)]
        )

    def _hello(self, command: str, arg: str | None) -> bytes:
        if not arg:
            return reply_line(f"501 5.5.4 Syntax: {command} hostname")
        self._reset()
        s, session = self._s, self._session
        extended = session.extended_smtp = self._extended = command == "EHLO"
        hook = s.on_ehlo if extended else s.on_helo
        if hook is None:
            session.host_name = arg
            reply = s.ehlo if extended else s.helo
        elif extended:
            lines = hook(self, session, self._env, arg, list(s.ehlo_lines))
            reply = b"".join(reply_line(x) for x in lines)
        else:
            reply = s.wire[hook(self, session, self._env, arg)]
        self._helo = bool(session.host_name)  # as aiosmtpd: a hook may leave it unset
        return reply

    def _rare(self, command: str, arg: str | None) -> bytes:
        if command == "VRFY":
            address = vrfy_arg(arg)
            if isinstance(address, bytes):
                return address
            return self._answer(self._s.on_vrfy, CANNOT_VRFY, address)
        reply = other_reply(command, arg, self._helo, self._extended)
        if reply is not None:
            return reply
        self._bogus -= 1
        if self._bogus < 1:
            self._closing = True
            return GOODBYE
        return UNKNOWN

    def _mail(self, arg: str | None) -> bytes:
        if not self._helo:
            return NEED_HELO
        parsed = envelope_arg(arg, "MAIL", self._extended)
        if isinstance(parsed, bytes):
            return parsed
        address, options = parsed
        s, env = self._s, self._env
        if env.mail_from:
            return NESTED
        if options:
            refused = mail_params_refused(options, s.limit)
            if refused is not None:
                return refused
        if s.on_mail is None:
            env.mail_from = address
            if options:
                env.mail_options.extend(options)
            return MAIL_OK
        return s.wire[s.on_mail(self, self._session, env, address, options)]

    def _rcpt(self, arg: str | None) -> bytes:
        if not self._helo:
            return NEED_HELO
        env = self._env
        if not env.mail_from:
            return NEED_MAIL
        parsed = envelope_arg(arg, "RCPT", self._extended)
        if isinstance(parsed, bytes):
            return parsed
        address, options = parsed
        if options:
            return SYNTAX_ERROR["RCPT", True] if params(options) is None else RCPT_PARAMS
        s = self._s
        if len(env.rcpt_tos) >= s.recipients:
            self._over += 1  # counted as errors once as many again were refused (Postfix)
            return TOO_MANY_RCPTS_COUNTED if self._over > s.recipients else TOO_MANY_RCPTS
        if s.on_rcpt is None:
            env.rcpt_tos.append(address)
            return RCPT_OK
        return s.wire[s.on_rcpt(self, self._session, env, address, options)]


def _failed(exc: Exception) -> bytes:
    """The reply when a hook raised (called while handling it: the log has the traceback)."""
    log.exception("an SMTP handler hook failed")
    return reply_line(f"500 5.3.0 Error: ({type(exc).__name__}) handler failed")


def server_factory(
    handler: object,
    *,
    hostname: str,
    banner: str,
    limits: Limits = DEFAULT_LIMITS,
    protocol: type[FastServerProtocol] = FastServerProtocol,
) -> Callable[[], FastServerProtocol]:
    """A ``create_server`` factory of connections calling *handler*'s hooks (bound now), each
    held to *limits*."""
    shared = Shared(handler, hostname, banner, limits)
    return lambda: protocol(shared)
