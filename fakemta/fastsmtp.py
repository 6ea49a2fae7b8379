"""aiosmtpd with a fast path for addresses, and PIPELINING advertised.

Profiling aiosmtpd as a sink (see the README's Performance section) shows about half its time
in ``SMTP._getaddr``, which builds parser objects with ``email._header_value_parser`` for every
MAIL and RCPT. :class:`FastSMTP` parses the common case — ``<local@domain>`` with a dot-atom
local part and a plain domain — directly, and hands anything else to aiosmtpd's parser, so the
two agree on every input (tests/test_fastsmtp.py checks that with generated addresses).
aiosmtpd already processes pipelined commands in order; :class:`PipeliningEhlo` only says so.
"""

from __future__ import annotations

import re
from typing import Any

from aiosmtpd.smtp import SMTP

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>"
)


class FastSMTP(SMTP):
    """aiosmtpd's SMTP protocol with a fast address parser (same results)."""

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        m = _SIMPLE.match(arg)
        if m is not None:
            addr = m.group(1)
            rest = arg[m.end() :]
            # aiosmtpd's parser eats the whitespace (and comments) after ">": take the plain
            # cases, hand the rest (comments, text glued to ">") to it.
            if not rest or rest[0] in " \t":
                rest = rest.lstrip(" \t")
                local = addr.rpartition("@")[0]
                if not rest.startswith("(") and not (
                    self.local_part_limit and len(local) > self.local_part_limit
                ):
                    return addr, rest
        result: tuple[str | None, str | None] = SMTP._getaddr(self, arg)
        return result


class PipeliningEhlo:
    """A handler mixin that adds ``PIPELINING`` to the EHLO reply (RFC 2920)."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]
