"""A plain ``asyncio.Protocol`` SMTP server (works on uvloop): the post office's hot path, and
the fake MTA's submission port when nothing needs aiosmtpd.

aiosmtpd spends its time in machinery, not in SMTP: a ``StreamReader.readuntil`` per body
line, a ``drain()`` per reply, coroutine switches per command. Here each ``data_received``
chunk is handled synchronously: every complete command line in it is answered in order, the
replies of the chunk go out in ONE ``transport.write`` (pipelined clients send a whole group
at once, so one write answers it), and a body is found with one ``bytes.find`` of
``CRLF.CRLF`` over the whole buffer and dot-unstuffed with one ``replace``. The clock is read
once per chunk: all lines of a chunk arrived together.

Replies follow aiosmtpd's (the reference, see tests/observe/test_fastpost.py) in codes and wording,
with RFC 3463 enhanced codes added since ENHANCEDSTATUSCODES is advertised. On purpose unlike
aiosmtpd: body lines may be longer than 1000 bytes (only the message size is limited); the
idle timeout counts any received bytes, not only valid commands, and says 421 before closing;
unknown commands are not echoed back.

:class:`FastServerProtocol` is the SMTP; what a recipient and a whole message mean is left to
a subclass (:meth:`FastServerProtocol._recipient`, :meth:`FastServerProtocol._accept`):
:class:`bench.observe.postoffice_protocol.PostOfficeProtocol` records arrivals, and
:class:`fakemta.submission.QueueProtocol` queues them for the relay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from bench.smtp.aioserver import FastSMTP
from bench.smtp.replies import (
    AUTH_NEEDS_TLS,
    BAD_SYNTAX,
    BYE,
    CANNOT_VRFY,
    EXTENDED,
    GO_AHEAD,
    GOODBYE,
    MAIL_OK,
    MAIL_PARAMS,
    MALFORMED,
    NEED_HELO,
    NEED_MAIL,
    NEED_RCPT,
    NESTED,
    NOT_ASCII,
    OK,
    SIZE_EXCEEDED,
    SUPPORTED,
    SYNTAX,
    SYNTAX_ERROR,
    TOO_LONG,
    TOO_MUCH,
    UNKNOWN,
    Shared,
    reply_line,
)

DATA_SIZE_DEFAULT = 2**25  # aiosmtpd's default message size limit
COMMAND_LIMIT = 512  # aiosmtpd's command_size_limit; MAIL after EHLO gets +26 for SIZE=
LINE_BUFFER_LIMIT = 1001  # a partial command line longer than this is discarded
BOGUS_LIMIT = 5  # the 5th unknown command closes the connection, as in aiosmtpd

P = TypeVar("P", bound="FastServerProtocol")

_now = time.monotonic_ns
_getaddr: Callable[[Any, str], tuple[str | None, str | None]] = FastSMTP._getaddr


class FastServerProtocol(asyncio.Protocol):
    """One SMTP connection; see the module docstring."""

    # fmt: off
    __slots__ = (
        "_body", "_bogus", "_closing", "_extended", "_helo", "_in_data", "_last_ns", "_mail_from",
        "_mail_ns", "_pending", "_rcpts", "_s", "_skipping", "_timer", "_too_much", "_transport",
    )
    # fmt: on

    def __init__(self, shared: Shared) -> None:
        self._s = shared
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._pending = b""  # a partial command line (at most LINE_BUFFER_LIMIT bytes)
        self._body: bytearray | None = None  # a body spanning chunks, after a CRLF prefix
        self._in_data = self._skipping = self._too_much = self._closing = False
        self._helo = self._extended = False
        self._mail_from: str | None = None
        self._rcpts = self._mail_ns = self._last_ns = 0
        self._bogus = BOGUS_LIMIT

    # -- transport events --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        self._last_ns = _now()
        transport.write(self._s.greeting)
        self._timer = asyncio.get_running_loop().call_later(self._s.timeout, self._on_timer)

    def connection_lost(self, exc: Exception | None) -> None:
        # A message not yet ended by its dot is dropped: no sink call.
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
        idle = (_now() - self._last_ns) / 1e9
        if idle >= self._s.timeout - 0.001:
            t.write(self._s.timed_out)
            t.close()
            return
        self._timer = asyncio.get_running_loop().call_later(self._s.timeout - idle, self._on_timer)

    def data_received(self, data: bytes) -> None:
        now = _now()
        self._last_ns = now
        out: list[bytes] = []
        if self._pending:
            data, self._pending = self._pending + data, b""
        pos, end = 0, len(data)
        while pos < end and not self._closing:  # every pass consumes >= 1 byte or stops
            if self._in_data:
                pos = self._data(data, pos, now, out)
                continue
            nl = data.find(b"\n", pos)
            if nl < 0:
                if not self._skipping:
                    if end - pos > LINE_BUFFER_LIMIT:
                        self._skipping = True  # drop it all; answer once the line ends
                    else:
                        self._pending = data[pos:]
                break
            if self._skipping:
                self._skipping = False
                out.append(TOO_LONG)
            else:
                out.append(self._command(data[pos:nl].rstrip(b"\r"), now))
            pos = nl + 1
        t = self._transport
        if t is not None:
            if out:
                t.write(b"".join(out))
            if self._closing:
                t.close()

    # -- DATA --------------------------------------------------------------------------
    def _data(self, data: bytes, pos: int, now: int, out: list[bytes]) -> int:
        """Take body bytes from data[pos:]; return where the commands resume."""
        body = self._body
        if body is None:  # the common case: the whole body is in this chunk
            if data.startswith(b".\r\n", pos):
                out.append(self._deliver(b"", 0, now))
                return pos + 3
            i = data.find(b"\r\n.\r\n", pos)
            if i >= 0:
                raw = data[pos : i + 2]
                content = raw.replace(b"\r\n.", b"\r\n")
                if content[:1] == b".":
                    content = content[1:]
                out.append(self._deliver(content, len(raw), now))
                return i + 5
            # The CRLF prefix makes a dot on the first line look like any other line start.
            body = self._body = bytearray(b"\r\n")
            scan = 0
        else:
            scan = max(len(body) - 4, 0)  # the marker may straddle the chunks
        body += data[pos:] if pos else data
        i = body.find(b"\r\n.\r\n", scan)
        if i < 0:
            if len(body) - 4 > self._s.limit:  # too big whatever follows: keep the tail
                self._too_much = True
                del body[:-4]
            return len(data)
        rest = len(body) - (i + 5)  # bytes after the dot: commands, from this chunk
        if self._too_much:
            out.append(self._deliver(b"", self._s.limit + 1, now))
        else:
            content = bytes(body[: i + 2].replace(b"\r\n.", b"\r\n")[2:])
            out.append(self._deliver(content, i, now))
        return len(data) - rest

    def _deliver(self, content: bytes, raw_size: int, now: int) -> bytes:
        """End of DATA: :meth:`_accept` the message (if not too big); reset the envelope."""
        mail_from = self._mail_from or ""
        self._in_data = self._too_much = False
        self._body = None
        self._mail_from, self._rcpts = None, 0
        if raw_size > self._s.limit:
            return TOO_MUCH
        return self._accept(mail_from, content, now)

    def _accept(self, mail_from: str, content: bytes, now: int) -> bytes:
        """The reply to a whole message (the subclass's job)."""
        raise NotImplementedError

    # -- commands ----------------------------------------------------------------------
    def _command(self, line: bytes, now: int) -> bytes:
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
        limit = COMMAND_LIMIT + 26 if command == "MAIL" and self._extended else COMMAND_LIMIT
        if len(line) > limit:
            return TOO_LONG
        if command == "MAIL":
            return self._mail(arg, now)
        if command == "RCPT":
            return self._rcpt(arg)
        if command == "DATA":
            if not self._helo:
                return NEED_HELO
            if not self._rcpts:
                return NEED_RCPT
            if arg:
                return reply_line("501 5.5.4 Syntax: DATA")
            self._in_data = True
            return GO_AHEAD
        if command in ("EHLO", "HELO"):
            if not arg:
                return reply_line(f"501 5.5.4 Syntax: {command} hostname")
            self._helo, self._extended = True, command == "EHLO"
            self._mail_from, self._rcpts = None, 0
            return self._s.ehlo if self._extended else self._s.helo
        if command in ("RSET", "QUIT", "STARTTLS") and arg:
            return reply_line(f"501 5.5.4 Syntax: {command}")
        if command == "RSET":
            self._mail_from, self._rcpts = None, 0
            return OK
        if command == "QUIT":
            self._closing = True
            return BYE
        if command == "NOOP":
            return OK
        return self._rare(command, arg)

    def _rare(self, command: str, arg: str | None) -> bytes:
        if command == "VRFY":
            if not arg:
                return reply_line("501 5.5.4 Syntax: VRFY <address>")
            try:
                address = _getaddr(_NO_LOCAL_LIMIT, arg)[0]
            except Exception as exc:
                return reply_line(f"500 5.5.2 Error: ({type(exc).__name__}) unparsable address")
            if address is None:
                return reply_line("502 5.5.4 Could not VRFY " + arg)
            return CANNOT_VRFY
        if command == "HELP":
            if not arg:
                return reply_line("250 2.0.0 " + SUPPORTED)
            text = SYNTAX.get(arg.upper())
            if text is None:
                return reply_line("501 5.5.4 " + SUPPORTED)
            extended = self._extended and arg.upper() in ("MAIL", "RCPT")
            return reply_line("250 2.0.0 Syntax: " + text + (EXTENDED if extended else ""))
        if command == "EXPN":
            return reply_line("502 5.5.1 EXPN not implemented")
        if command == "STARTTLS":
            return reply_line("454 4.7.0 TLS not available")
        if command == "AUTH":  # not offered; answered as aiosmtpd answers without TLS
            if not self._helo:
                return reply_line("503 5.5.1 Error: send EHLO first")
            if not self._extended:
                return reply_line("500 5.5.1 Error: command 'AUTH' not recognized")
            return AUTH_NEEDS_TLS
        self._bogus -= 1  # BDAT and CHUNKING are not offered: unknown, as in aiosmtpd
        if self._bogus < 1:
            self._closing = True
            return GOODBYE
        return UNKNOWN

    def _envelope_arg(self, arg: str | None, verb: str) -> tuple[str, list[str]] | bytes:
        """The address and upper-cased parameters of MAIL/RCPT, or the error reply."""
        syntax = SYNTAX_ERROR[verb, self._extended]
        keyword = "FROM:" if verb == "MAIL" else "TO:"
        if arg is None or arg[: len(keyword)].upper() != keyword:
            return syntax
        try:
            address, rest = _getaddr(_NO_LOCAL_LIMIT, arg[len(keyword) :].strip())
        except Exception as exc:  # aiosmtpd's parser raises on some inputs: it answers 500
            return reply_line(f"500 5.5.2 Error: ({type(exc).__name__}) unparsable address")
        if address is None:
            return MALFORMED
        if not address or (rest and not self._extended):
            return syntax
        return address, (rest or "").upper().split()

    @staticmethod
    def _params(options: list[str]) -> dict[str, str | bool] | None:
        """ESMTP parameters as aiosmtpd's ``_getparams`` reads them (None: bad syntax)."""
        params: dict[str, str | bool] = {}
        for p in options:
            name, eq, value = p.partition("=")
            if not name.isalnum() or (eq and not value):
                return None
            params[name] = value if eq else True
        return params

    def _mail(self, arg: str | None, now: int) -> bytes:
        if not self._helo:
            return NEED_HELO
        parsed = self._envelope_arg(arg, "MAIL")
        if isinstance(parsed, bytes):
            return parsed
        address, options = parsed
        if self._mail_from:
            return NESTED
        params = self._params(options) if options else {}
        if params is None:
            return SYNTAX_ERROR["MAIL", True]
        if params:
            if params.pop("BODY", "7BIT") not in ("7BIT", "8BITMIME"):
                return reply_line("501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME")
            utf8 = params.pop("SMTPUTF8", False)
            if utf8 is not False:
                if utf8 is not True:
                    return reply_line("501 5.5.4 Error: SMTPUTF8 takes no arguments")
                return reply_line("501 5.5.4 Error: SMTPUTF8 disabled")
            size = params.pop("SIZE", None)
            if size:
                if isinstance(size, bool) or not size.isdigit():
                    return SYNTAX_ERROR["MAIL", True]
                if int(size) > self._s.limit:
                    return SIZE_EXCEEDED
            if params:
                return MAIL_PARAMS
        self._mail_from, self._mail_ns = address, now
        return MAIL_OK

    def _rcpt(self, arg: str | None) -> bytes:
        if not self._helo:
            return NEED_HELO
        if not self._mail_from:
            return NEED_MAIL
        parsed = self._envelope_arg(arg, "RCPT")
        if isinstance(parsed, bytes):
            return parsed
        address, options = parsed
        if options and self._params(options) is None:
            return SYNTAX_ERROR["RCPT", True]
        if options:
            return reply_line("555 5.5.4 RCPT TO parameters not recognized or not implemented")
        return self._recipient(address)

    def _recipient(self, address: str) -> bytes:
        """The reply to a well-formed RCPT; taking it counts it in ``_rcpts`` (the
        subclass's job)."""
        raise NotImplementedError


class _NoLocalLimit:
    """Stands in for aiosmtpd's SMTP instance in ``_getaddr`` (it reads only this)."""

    local_part_limit = 0


_NO_LOCAL_LIMIT = _NoLocalLimit()


def server_factory(
    make: Callable[[Shared], P],
    owner: object,
    *,
    hostname: str,
    timeout: float = 300.0,
    data_size_limit: int = DATA_SIZE_DEFAULT,
    banner: str,
) -> Callable[[], P]:
    """A ``create_server`` factory of *make*(shared) connections; *owner* is what they share."""
    shared = Shared(owner, hostname, timeout, data_size_limit, banner)
    return lambda: make(shared)
