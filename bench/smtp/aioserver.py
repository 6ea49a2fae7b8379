"""aiosmtpd with a fast path for addresses, and PIPELINING advertised.

Profiling aiosmtpd as a sink showed about half its time in ``SMTP._getaddr``, which builds
parser objects with ``email._header_value_parser`` for every MAIL and RCPT (field notes: aiosmtpd
as a sink ~2,800 msgs/s, ~6,800 with a fast address parser; ``mailsla selftest --fast-paths``
measures this parser against aiosmtpd's, ~56× on ordinary arguments). :class:`FastSMTP`
parses the common case — ``<local@domain>`` with a dot-atom local part and a plain domain —
directly, and hands anything else to aiosmtpd's parser, so the two agree on every input
(tests/smtp/test_fastsmtp.py checks that with generated addresses).
aiosmtpd already processes pipelined commands in order; :class:`PipeliningEhlo` only says so.

Handlers are shared with :mod:`bench.smtp.server`: :class:`FastSMTP` also takes hooks that are
plain functions (that server's hot path wants no coroutine per hook), and tells them
``server.arrival_ns``.

aiosmtpd writes (a syscall) and drains once per reply. Profiled at 6,900 msgs/s, those writes
were a third of the fake MTA's process. :meth:`FastSMTP.push` holds an ordinary reply (250,
354) while more of a pipelined group is already read and waiting, and sends the held replies
with the next reply that is not held back (the one answering the group's last command), or as
soon as the session waits for anything: one write per group instead of one per command (and
per multi-line reply, such as EHLO's, instead of one per line). The bytes and their order are
aiosmtpd's; the last line of a reply that ends or changes the connection (220 for STARTTLS,
221, 421, errors) is never held.
"""

from __future__ import annotations

import inspect
import re
import time
from typing import Any, AnyStr, cast

from aiosmtpd.smtp import MISSING, SMTP

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>"
)


_HOLD = (b"250", b"354")  # replies that may wait for the rest of a pipelined group


class FastSMTP(SMTP):
    """aiosmtpd's SMTP protocol with a fast address parser (same results) and one write per
    pipelined group of replies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: list[bytes] = []

    @property
    def arrival_ns(self) -> int:
        """When the command being answered arrived (monotonic ns): here, now."""
        return time.monotonic_ns()

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        """aiosmtpd's, for hooks that are plain functions too."""
        hook = self._handle_hooks.get(command)
        if hook is None:
            return MISSING
        status = hook(self, self.session, self.envelope, *args)
        if inspect.isawaitable(status):
            status = await status
        return status

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str):
            line = status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") + b"\r\n"
        else:
            line = status + b"\r\n"
        held, reader = self._held, cast(Any, self._reader)
        # More of the group is in, or a multi-line reply goes on: answer later.
        if line[3:4] == b"-" or (line[:3] in _HOLD and reader._buffer):
            if not held:
                self.loop.call_soon(self._flush_held)
            held.append(line)
            return
        if held:
            held.append(line)
            line = b"".join(held)
            held.clear()
        self._writer.write(line)
        await self._writer.drain()

    def _flush_held(self) -> None:
        """The session waits (for input, a delay, a handler): send what it holds."""
        if self._held:
            data = b"".join(self._held)
            self._held.clear()
            transport = self.transport
            if transport is not None and not transport.is_closing():
                self._writer.write(data)

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
    """A handler mixin that adds ``PIPELINING`` to the EHLO reply (RFC 2920), unless the
    server says it already (:mod:`bench.smtp.server` does)."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        if "250-PIPELINING" in responses:
            return responses
        return [*responses[:-1], "250-PIPELINING", responses[-1]]
