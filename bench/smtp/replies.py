"""SMTP replies, both ways. Pure.

The server side: the replies of :mod:`bench.smtp.server` (aiosmtpd's codes and wording, with
RFC 3463 enhanced codes, and Postfix's where a limit is reached: :mod:`bench.smtp.limits`),
built once; the answers that depend on a command's argument alone (MAIL and RCPT arguments,
VRFY, HELP and the commands not offered); and what its handler's hooks are handed and answer
with: the light :class:`Session` and :class:`Envelope`, and :class:`Shared`, which binds the
hooks once per server and keeps the bytes of their replies. A reply of the server's own that
counts towards the error limit is a :class:`Refusal` (bytes all the same), so that the server
tells it from a hook's reply with one type check.

The client side: :class:`ReplyReader`, how mailsla's clients read a server's replies (the
generator's pipelined client, :mod:`bench.smtp.pipeclient`, and the fake MTA's relay,
:mod:`fakemta.relayclient`): lines split once per chunk, a line that is no reply is a
:class:`ProtocolError` (matching what follows to the commands would be guesswork), and so is a
partial line longer than :data:`MAX_LINE`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol

from bench.smtp.aioserver import FastSMTP
from bench.smtp.limits import (
    LINE_TOO_LONG,
    SIZE_EXCEEDED,
    TOO_MANY_RECIPIENTS,
    Limits,
    nul_reply,
    timed_out,
    too_many_errors,
)

# fmt: off
SYNTAX = {  # HELP texts, as aiosmtpd's @syntax (STARTTLS is hidden without TLS)
    "AUTH": "AUTH <mechanism>", "DATA": "DATA", "EHLO": "EHLO hostname", "HELO": "HELO hostname",
    "HELP": "HELP [command]", "MAIL": "MAIL FROM: <address>", "NOOP": "NOOP [ignored]",
    "QUIT": "QUIT", "RCPT": "RCPT TO: <address>", "RSET": "RSET", "VRFY": "VRFY <address>",
}
# fmt: on
EXTENDED = " [SP <mail-parameters>]"
SUPPORTED = "Supported commands: " + " ".join(sorted(SYNTAX))


class Refusal(bytes):
    """The bytes of an error reply of the server's own: it counts towards the error limit."""

    __slots__ = ()


def reply_line(text: str) -> bytes:
    """The wire form of the server's own reply *text*: a :class:`Refusal` for 4xx and 5xx."""
    wire = text.encode("ascii") + b"\r\n"
    return Refusal(wire) if text[:1] in ("4", "5") else wire


def plain_line(text: str) -> bytes:
    """The wire form of *text*, never counted as an error (a hook's, or an end of DATA's)."""
    return text.encode("ascii") + b"\r\n"


SYNTAX_ERROR = {  # (verb, after EHLO): the 501 reply
    (verb, ext): reply_line(f"501 5.5.4 Syntax: {SYNTAX[verb]}" + (EXTENDED if ext else ""))
    for verb in ("MAIL", "RCPT")
    for ext in (False, True)
}


OK = reply_line("250 2.0.0 OK")
MAIL_OK = reply_line("250 2.1.0 Ok")
RCPT_OK = reply_line("250 2.1.5 Ok")
GO_AHEAD = reply_line("354 End data with <CR><LF>.<CR><LF>")
BYE = reply_line("221 2.0.0 Bye")
BAD_SYNTAX = reply_line("500 5.5.2 Error: bad syntax")
NOT_ASCII = reply_line("500 5.5.2 Error: strict ASCII mode")
TOO_LONG = reply_line(LINE_TOO_LONG)
UNKNOWN = reply_line("500 5.5.2 Error: command not recognized")
GOODBYE = plain_line("502 5.5.1 Too many unrecognized commands, goodbye.")  # then closed
NEED_HELO = reply_line("503 5.5.1 Error: send HELO first")
NEED_MAIL = reply_line("503 5.5.1 Error: need MAIL command")
NEED_RCPT = reply_line("503 5.5.1 Error: need RCPT command")
NESTED = reply_line("503 5.5.1 Error: nested MAIL command")
MALFORMED = reply_line("553 5.1.3 Error: malformed address")
TOO_MUCH = plain_line(SIZE_EXCEEDED)  # at the end of DATA: not a command's error
CANNOT_VRFY = reply_line("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery")
AUTH_NEEDS_TLS = reply_line("538 5.7.11 Encryption required for requested authentication mechanism")
MAIL_PARAMS = reply_line("555 5.5.4 MAIL FROM parameters not recognized or not implemented")
RCPT_PARAMS = reply_line("555 5.5.4 RCPT TO parameters not recognized or not implemented")
SIZE_TOO_BIG = reply_line(SIZE_EXCEEDED)  # MAIL FROM with a SIZE= over the limit
TOO_MANY_RCPTS = plain_line(TOO_MANY_RECIPIENTS)  # not counted (Postfix's overshoot)...
TOO_MANY_RCPTS_COUNTED = reply_line(TOO_MANY_RECIPIENTS)  # ...until as many again were refused
COMMANDS = ("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "HELP", "EXPN")
NUL_REPLY = {verb: reply_line(nul_reply(verb)) for verb in (*COMMANDS, "STARTTLS", "AUTH")}


def params(options: list[str]) -> dict[str, str | bool] | None:
    """ESMTP parameters as aiosmtpd's ``_getparams`` reads them (None: bad syntax)."""
    found: dict[str, str | bool] = {}
    for p in options:
        name, eq, value = p.partition("=")
        if not name.isalnum() or (eq and not value):
            return None
        found[name] = value if eq else True
    return found


def mail_params_refused(options: list[str], limit: int) -> bytes | None:
    """The reply refusing MAIL's (upper-cased, non-empty) *options*, as aiosmtpd checks them
    in its order, or None when they are fine (*limit*: the largest message)."""
    found = params(options)
    if found is None:
        return SYNTAX_ERROR["MAIL", True]
    if found.pop("BODY", "7BIT") not in ("7BIT", "8BITMIME"):
        return reply_line("501 5.5.4 Error: BODY can only be one of 7BIT, 8BITMIME")
    utf8 = found.pop("SMTPUTF8", False)
    if utf8 is not False:
        if utf8 is not True:
            return reply_line("501 5.5.4 Error: SMTPUTF8 takes no arguments")
        return reply_line("501 5.5.4 Error: SMTPUTF8 disabled")
    size = found.pop("SIZE", None)
    if size:
        if isinstance(size, bool) or not size.isdigit():
            return SYNTAX_ERROR["MAIL", True]
        if int(size) > limit:
            return SIZE_TOO_BIG
    return MAIL_PARAMS if found else None


class _NoLocalLimit:
    """Stands in for aiosmtpd's SMTP instance in ``_getaddr`` (it reads only this)."""

    local_part_limit = 0


_NO_LOCAL_LIMIT = _NoLocalLimit()
_getaddr: Callable[[Any, str], tuple[str | None, str | None]] = FastSMTP._getaddr


def _unparsable(exc: Exception) -> bytes:  # aiosmtpd's parser raises on some inputs
    return reply_line(f"500 5.5.2 Error: ({type(exc).__name__}) unparsable address")


def envelope_arg(arg: str | None, verb: str, extended: bool) -> tuple[str, list[str]] | bytes:
    """The address and upper-cased parameters of MAIL/RCPT *arg*, or the error reply
    (*extended*: after EHLO)."""
    syntax = SYNTAX_ERROR[verb, extended]
    keyword = "FROM:" if verb == "MAIL" else "TO:"
    if arg is None or arg[: len(keyword)].upper() != keyword:
        return syntax
    try:
        address, rest = _getaddr(_NO_LOCAL_LIMIT, arg[len(keyword) :].strip())
    except Exception as exc:
        return _unparsable(exc)
    if address is None:
        return MALFORMED
    if not address or (rest and not extended):
        return syntax
    return address, (rest or "").upper().split()


def vrfy_arg(arg: str | None) -> str | bytes:
    """The address VRFY *arg* asks about, or the error reply."""
    if not arg:
        return reply_line("501 5.5.4 Syntax: VRFY <address>")
    try:
        address = _getaddr(_NO_LOCAL_LIMIT, arg)[0]
    except Exception as exc:
        return _unparsable(exc)
    return reply_line("502 5.5.4 Could not VRFY " + arg) if address is None else address


def other_reply(command: str, arg: str | None, helo: bool, extended: bool) -> bytes | None:
    """The reply to HELP or a command not offered (EXPN, STARTTLS, AUTH); None: unknown
    (*helo*: after HELO or EHLO, *extended*: after EHLO)."""
    if command == "HELP":
        if not arg:
            return reply_line("250 2.0.0 " + SUPPORTED)
        text = SYNTAX.get(arg.upper())
        if text is None:
            return reply_line("501 5.5.4 " + SUPPORTED)
        more = EXTENDED if extended and arg.upper() in ("MAIL", "RCPT") else ""
        return reply_line("250 2.0.0 Syntax: " + text + more)
    if command == "EXPN":
        return reply_line("502 5.5.1 EXPN not implemented")
    if command == "STARTTLS":
        return reply_line("454 4.7.0 TLS not available")
    if command == "AUTH":  # not offered; answered as aiosmtpd answers without TLS
        if not helo:
            return reply_line("503 5.5.1 Error: send EHLO first")
        if not extended:
            return reply_line("500 5.5.1 Error: command 'AUTH' not recognized")
        return AUTH_NEEDS_TLS
    return None  # BDAT and CHUNKING are not offered either: unknown, as in aiosmtpd


# -- what a handler's hooks are handed ---------------------------------------------------
class Server(Protocol):
    """What a hook may ask of the server calling it (bench.smtp.server's, or FastSMTP)."""

    @property
    def arrival_ns(self) -> int: ...


class Session:
    """The connection as hooks see it: aiosmtpd's ``Session``, light."""

    __slots__ = ("extended_smtp", "host_name", "peer")

    def __init__(self, peer: Any) -> None:
        self.peer = peer
        self.host_name: str | None = None
        self.extended_smtp = False


class Envelope:
    """The transaction as hooks see it: aiosmtpd's ``Envelope``, light (``content`` is
    ``original_content``, bytes), and ``mail_ns``, the MAIL hook's to set (the post office
    notes the arrival of MAIL there). The connection's own: see :mod:`bench.smtp.server`."""

    # fmt: off
    __slots__ = ("content", "mail_from", "mail_ns", "mail_options", "original_content",
                 "rcpt_options", "rcpt_tos", "smtp_utf8")
    # fmt: on

    def __init__(self) -> None:
        self.mail_from: str | None = None
        self.mail_options: list[str] = []
        self.rcpt_tos: list[str] = []
        self.rcpt_options: list[str] = []
        self.content: bytes | None = None
        self.original_content: bytes | None = None
        self.smtp_utf8 = False
        self.mail_ns = 0


HOOKS = ("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY")
Hook = Callable[..., Any]


class _Wire(dict[str, bytes]):
    """A hook's reply text → the bytes sent; a handler's replies are mostly a few constants,
    so they are kept (up to a bound: queue ids and addresses make each one new)."""

    def __missing__(self, status: str) -> bytes:
        wire = plain_line(status)
        if len(self) < 256:
            self[status] = wire
        return wire


def _bind(handler: object, command: str) -> Hook | None:
    """The handler's hook for *command*, callable from synchronous code (None: none)."""
    hook: Hook | None = getattr(handler, "handle_" + command, None)
    if hook is None or not inspect.iscoroutinefunction(hook):
        return hook
    run_async = hook

    def run(*args: Any) -> Any:
        coro = run_async(*args)
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        coro.close()
        raise RuntimeError(f"handle_{command} waited: this server's hooks may not")

    return run


class Shared:
    """Per server: the handler's hooks, bound once, the limits, and the replies built once, so
    that a connection costs only its own state."""

    # fmt: off
    __slots__ = ("ehlo", "ehlo_lines", "errors", "greeting", "handler", "helo", "limit",
                 "on_data", "on_ehlo", "on_helo", "on_mail", "on_noop", "on_quit",
                 "on_rcpt", "on_rset", "on_vrfy", "raw_line", "recipients", "timed_out", "timeout",
                 "too_many_errors", "wire")
    # fmt: on

    def __init__(self, handler: object, hostname: str, banner: str, limits: Limits) -> None:
        self.handler = handler
        self.timeout, self.limit = limits.idle_timeout, limits.message_size
        self.raw_line = limits.line_length + 1  # a command and its CR (or LF alone) at most
        self.recipients, self.errors = limits.recipients, limits.errors
        self.greeting = reply_line(f"220 {hostname} {banner}")
        self.helo = reply_line(f"250 {hostname}")
        self.timed_out = plain_line(timed_out(hostname))
        self.too_many_errors = plain_line(too_many_errors(hostname))
        limit = self.limit
        ehlo = (hostname, f"SIZE {limit}", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES")
        self.ehlo_lines = (*("250-" + x for x in ehlo), "250 HELP")
        self.ehlo = b"".join(reply_line(x) for x in self.ehlo_lines)
        self.wire = _Wire()
        hooks = [_bind(handler, command) for command in HOOKS]
        self.on_helo, self.on_ehlo, self.on_mail, self.on_rcpt, self.on_data = hooks[:5]
        self.on_rset, self.on_noop, self.on_quit, self.on_vrfy = hooks[5:]


# -- reading replies (the client side) ---------------------------------------------------
MAX_LINE = 4096  # a partial reply line longer than this is no SMTP server's


class ProtocolError(Exception):
    """The peer does not speak SMTP (no 3-digit reply)."""


def reply_text(raw: bytes) -> str:
    """A reply's text, as outcomes carry it."""
    return raw.decode("utf-8", "replace")


class ReplyReader:
    """A client protocol's reading of replies, mixed into its ``asyncio.Protocol``: the
    protocol keeps ``buf`` (a partial line) and ``lines`` (the continuation lines of the reply
    being read; it empties the list once the reply is handled)."""

    buf: bytes
    lines: list[bytes]

    def _reply_lines(self, data: bytes) -> list[bytes]:
        """The complete lines of what was buffered and *data* (without their LF); the partial
        rest stays buffered. Raises :class:`ProtocolError` if the rest is longer than a line."""
        buf = self.buf + data if self.buf else data
        lines = buf.split(b"\n")
        self.buf = lines.pop()
        if len(self.buf) > MAX_LINE:
            raise ProtocolError(self.buf[:80])
        return lines

    def _reply_ends(self, line: bytes) -> bool:
        """Whether *line* ends a reply; a continuation line is kept in ``lines``. Raises
        :class:`ProtocolError` for a line that is no reply."""
        if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in b" -\r":
            raise ProtocolError(line[:80])
        if line[3:4] == b"-":
            self.lines.append(line)
            return False
        return True

    def _raw_text(self, last: bytes) -> bytes:
        """The text of the reply ending with line *last*: its lines without their codes,
        joined by "\\n"."""
        lines = self.lines
        if not lines:
            return last[4:].rstrip(b"\r")
        return b"\n".join([x[4:].rstrip(b"\r") for x in lines] + [last[4:].rstrip(b"\r")])
