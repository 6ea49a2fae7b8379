"""The replies of :mod:`bench.smtp.server` (aiosmtpd's codes and wording, with RFC 3463
enhanced codes), and :class:`Shared`, a server's own (greeting, EHLO) built once. Pure."""

from __future__ import annotations

# fmt: off
SYNTAX = {  # HELP texts, as aiosmtpd's @syntax (STARTTLS is hidden without TLS)
    "AUTH": "AUTH <mechanism>", "DATA": "DATA", "EHLO": "EHLO hostname", "HELO": "HELO hostname",
    "HELP": "HELP [command]", "MAIL": "MAIL FROM: <address>", "NOOP": "NOOP [ignored]",
    "QUIT": "QUIT", "RCPT": "RCPT TO: <address>", "RSET": "RSET", "VRFY": "VRFY <address>",
}
# fmt: on
EXTENDED = " [SP <mail-parameters>]"
SUPPORTED = "Supported commands: " + " ".join(sorted(SYNTAX))


def reply_line(text: str) -> bytes:
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
TOO_LONG = reply_line("500 5.5.2 Error: command line too long")
UNKNOWN = reply_line("500 5.5.2 Error: command not recognized")
GOODBYE = reply_line("502 5.5.1 Too many unrecognized commands, goodbye.")
NEED_HELO = reply_line("503 5.5.1 Error: send HELO first")
NEED_MAIL = reply_line("503 5.5.1 Error: need MAIL command")
NEED_RCPT = reply_line("503 5.5.1 Error: need RCPT command")
NESTED = reply_line("503 5.5.1 Error: nested MAIL command")
MALFORMED = reply_line("553 5.1.3 Error: malformed address")
TOO_MUCH = reply_line("552 5.3.4 Error: Too much mail data")
CANNOT_VRFY = reply_line("252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery")
AUTH_NEEDS_TLS = reply_line("538 5.7.11 Encryption required for requested authentication mechanism")
MAIL_PARAMS = reply_line("555 5.5.4 MAIL FROM parameters not recognized or not implemented")
SIZE_EXCEEDED = reply_line("552 5.3.4 Error: message size exceeds fixed maximum message size")


class Shared:
    """Per-server constants, built once so that a connection costs only its own state."""

    __slots__ = ("ehlo", "greeting", "helo", "limit", "owner", "timed_out", "timeout")

    def __init__(
        self, owner: object, hostname: str, timeout: float, limit: int, banner: str
    ) -> None:
        self.owner, self.timeout, self.limit = owner, timeout, limit  # owner: the subclass's
        self.greeting = reply_line(f"220 {hostname} {banner}")
        self.helo = reply_line(f"250 {hostname}")
        self.timed_out = reply_line(f"421 4.4.2 {hostname} Error: timeout exceeded")
        ehlo = (hostname, f"SIZE {limit}", "8BITMIME", "PIPELINING", "ENHANCEDSTATUSCODES")
        self.ehlo = b"".join(reply_line("250-" + x) for x in ehlo) + reply_line("250 HELP")
