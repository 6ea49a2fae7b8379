"""The replies of :mod:`fakemta.fastserver` (aiosmtpd's codes and wording, with RFC 3463
enhanced codes). Pure."""

from __future__ import annotations

# fmt: off
_SYNTAX = {  # HELP texts, as aiosmtpd's @syntax (STARTTLS is hidden without TLS)
    "AUTH": "AUTH <mechanism>", "DATA": "DATA", "EHLO": "EHLO hostname", "HELO": "HELO hostname",
    "HELP": "HELP [command]", "MAIL": "MAIL FROM: <address>", "NOOP": "NOOP [ignored]",
    "QUIT": "QUIT", "RCPT": "RCPT TO: <address>", "RSET": "RSET", "VRFY": "VRFY <address>",
}
# fmt: on
_EXTENDED = " [SP <mail-parameters>]"
_SUPPORTED = "Supported commands: " + " ".join(sorted(_SYNTAX))


def _r(text: str) -> bytes:
    return text.encode("ascii") + b"\r\n"


_SYNTAX_ERROR = {  # (verb, after EHLO): the 501 reply
    (verb, ext): _r(f"501 5.5.4 Syntax: {_SYNTAX[verb]}" + (_EXTENDED if ext else ""))
    for verb in ("MAIL", "RCPT")
    for ext in (False, True)
}


OK = _r("250 2.0.0 OK")
MAIL_OK = _r("250 2.1.0 Ok")
RCPT_OK = _r("250 2.1.5 Ok")
GO_AHEAD = _r("354 End data with <CR><LF>.<CR><LF>")
BYE = _r("221 2.0.0 Bye")
BAD_SYNTAX = _r("500 5.5.2 Error: bad syntax")
NOT_ASCII = _r("500 5.5.2 Error: strict ASCII mode")
TOO_LONG = _r("500 5.5.2 Error: command line too long")
UNKNOWN = _r("500 5.5.2 Error: command not recognized")
GOODBYE = _r("502 5.5.1 Too many unrecognized commands, goodbye.")
NEED_HELO = _r("503 5.5.1 Error: send HELO first")
NEED_MAIL = _r("503 5.5.1 Error: need MAIL command")
NEED_RCPT = _r("503 5.5.1 Error: need RCPT command")
NESTED = _r("503 5.5.1 Error: nested MAIL command")
MALFORMED = _r("553 5.1.3 Error: malformed address")
TOO_MUCH = _r("552 5.3.4 Error: Too much mail data")
SIZE_EXCEEDED = _r("552 5.3.4 Error: message size exceeds fixed maximum message size")
