"""What one SMTP session may ask of mailsla's servers, and the replies when it asks too much.
Pure.

Both server paths, :mod:`bench.smtp.server` and aiosmtpd's (:class:`bench.smtp.aioserver.FastSMTP`),
hold a session to the same :class:`Limits` and answer with the same replies: Postfix's defaults and
Postfix's wording (``postconf -d``), since the fake MTA stands in for a Postfix-like system and the
post office for a destination that behaves like one.

======================  =========================  ==============================================
limit                   Postfix's parameter        past it
======================  =========================  ==============================================
``recipients`` 1000     smtpd_recipient_limit      ``452 4.5.3 Error: too many recipients``
``line_length`` 2048    line_length_limit          ``500 5.5.2 Error: line too long`` (commands)
``message_size``        message_size_limit         advertised as ``SIZE``; a larger ``SIZE=`` or
10240000                                           body: ``552 5.3.4 Message size exceeds fixed
                                                   limit``
``errors`` 20           smtpd_hard_error_limit     ``421 4.7.0 <host> Error: too many errors``,
                                                   then the connection is closed
``idle_timeout`` 300 s  smtpd_timeout              ``421 4.4.2 <host> Error: timeout exceeded``
======================  =========================  ==============================================

Header and body lines are not limited in length, only the message is (as Postfix's smtpd, which
takes long lines and splits them, rather than refusing them): a 10 MB header line is a 10 MB
message, refused as such when that is over the size limit, and taken otherwise, on both paths.

What counts towards the error limit: the server's own 4xx and 5xx replies to commands (syntax,
order, unknown commands, lines too long, NUL bytes, a ``SIZE=`` too big, recipients beyond the
limit once as many again were refused), not what a handler's hooks answer (relay denied, queue
full, injected faults: policy, counted by the handler) and not the reply at the end of DATA. NUL
in the argument of a command is a 501 (in MAIL and RCPT Postfix's "bad address syntax"); NUL in the
verb makes an unknown command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TOO_MANY_RECIPIENTS = "452 4.5.3 Error: too many recipients"
LINE_TOO_LONG = "500 5.5.2 Error: line too long"
SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed limit"
BAD_SENDER = "501 5.1.7 Bad sender address syntax"
BAD_RECIPIENT = "501 5.1.3 Bad recipient address syntax"
NUL_IN_COMMAND = "501 5.5.2 Syntax error: NUL character in command"


def too_many_errors(hostname: str) -> str:
    """The reply before the connection is closed for its errors (smtpd_hard_error_limit)."""
    return f"421 4.7.0 {hostname} Error: too many errors"


def timed_out(hostname: str) -> str:
    """The reply before an idle connection is closed (smtpd_timeout)."""
    return f"421 4.4.2 {hostname} Error: timeout exceeded"


def nul_reply(command: str) -> str:
    """The reply to *command* (upper case) with a NUL byte in its argument."""
    if command == "MAIL":
        return BAD_SENDER
    if command == "RCPT":
        return BAD_RECIPIENT
    return NUL_IN_COMMAND


MAX_LINE_LENGTH = 1 << 20  # a line_length past this protects nothing
MAX_MESSAGE_SIZE = 1 << 32
MAX_COUNT = 1_000_000
MAX_TIMEOUT = 86_400.0


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits of one server (each per session, or per transaction for ``recipients``)."""

    recipients: int = 1000  # accepted recipients per transaction
    line_length: int = 2048  # bytes of a command line, without its CRLF
    message_size: int = 10_240_000  # bytes of a message as sent (dot-stuffed), without the dot
    errors: int = 20  # the server's own error replies before it closes the connection
    idle_timeout: float = 300.0  # seconds without a byte from the client

    def __post_init__(self) -> None:
        checks = (
            ("recipient limit", self.recipients, 1, MAX_COUNT),
            ("line length limit", self.line_length, 512, MAX_LINE_LENGTH),  # RFC 5321 4.5.3.1.4
            ("message size limit", self.message_size, 1, MAX_MESSAGE_SIZE),
            ("error limit", self.errors, 1, MAX_COUNT),
        )
        for what, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ValueError(f"{what} {value!r}: must be a whole number from {low} to {high}")
        t = self.idle_timeout
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise ValueError(f"idle timeout {t!r}: must be a number of seconds")
        if not 0 < t <= MAX_TIMEOUT:
            raise ValueError(f"idle timeout {t!r}: must be more than 0 s and at most a day")


DEFAULT_LIMITS = Limits()
