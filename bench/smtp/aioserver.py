"""aiosmtpd with a fast path for addresses, PIPELINING advertised, and the servers' limits.

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

:class:`FastSMTP` holds a session to the limits of :mod:`bench.smtp.server` and answers as it does
there (:mod:`bench.smtp.limits`: Postfix's defaults and wording): aiosmtpd's line limits made one
``line_length`` (it added 26 bytes for MAIL at every EHLO, in a dict all its instances share), its
limit replies reworded, a NUL in an argument refused, the recipient limit checked before the RCPT
hook, its own error replies counted until 421 and close, the idle timeout counting any byte and
saying 421, and DATA read in chunks into a :class:`bench.smtp.body.Body` (aiosmtpd keeps an object
per line and refuses lines over 1001 bytes). One difference is aiosmtpd's own: a client that
half-closes its side ends the session at once, where the fast server first answers what came
before.

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

import asyncio
import functools
import inspect
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, AnyStr, cast

from aiosmtpd.smtp import MISSING, SMTP, syntax

from bench.smtp.body import Body, release_soon
from bench.smtp.limits import (
    DEFAULT_LIMITS,
    LINE_TOO_LONG,
    SIZE_EXCEEDED,
    TOO_MANY_RECIPIENTS,
    Limits,
    nul_reply,
    timed_out,
    too_many_errors,
)

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>"
)


_HOLD = (b"250", b"354")  # replies that may wait for the rest of a pipelined group
_REWORDED = {  # aiosmtpd's wording of what a limit refuses -> bench.smtp.server's
    "500 Command line too long": LINE_TOO_LONG,
    "552 Error: message size exceeds fixed maximum message size": SIZE_EXCEEDED,
}
_GOODBYE = "502 5.5.1 Too many unrecognized commands, goodbye."  # closes: not counted
_READ = 1 << 18  # bytes asked of the reader at a time in DATA


class _LineLimits(dict[str, int]):
    """aiosmtpd's per-command line limits, all *limit*: EHLO's ``+= 26`` for MAIL is dropped."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __missing__(self, command: str) -> int:
        return self.limit

    def __setitem__(self, command: str, value: int) -> None:
        pass


class FastSMTP(SMTP):
    """aiosmtpd's SMTP protocol with a fast address parser (same results), one write per
    pipelined group of replies, and the limits of :mod:`bench.smtp.limits` (*limits*, which
    set aiosmtpd's ``data_size_limit`` and ``timeout``)."""

    def __init__(self, handler: Any, *, limits: Limits = DEFAULT_LIMITS, **kwargs: Any) -> None:
        self.limits = limits
        # the reader's limit and the command's: a command and its CR (or LF alone) at most
        self.line_length_limit = self.command_size_limit = limits.line_length + 1
        self.command_size_limits = _LineLimits(limits.line_length + 1)
        self._errors = limits.errors  # error replies left before the connection is closed
        self._over = 0  # recipients refused in this transaction for the limit
        self._exempt: object = None  # the next reply, when it is a hook's (not counted)
        self._seen = 0.0  # when the client last sent anything (loop time)
        kwargs.update(data_size_limit=limits.message_size, timeout=limits.idle_timeout)
        super().__init__(handler, **kwargs)
        self._held: list[bytes] = []
        self._smtp_methods = {
            name: self._refusing_nul(name, method) for name, method in self._smtp_methods.items()
        }

    @property
    def arrival_ns(self) -> int:
        """When the command being answered arrived (monotonic ns): here, now."""
        return time.monotonic_ns()

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        """aiosmtpd's, for hooks that are plain functions too; the recipient limit comes first
        (as in bench.smtp.server), and the hook's reply is not counted as an error."""
        if command == "RCPT" and len(self.envelope.rcpt_tos) >= self.limits.recipients:  # type: ignore[union-attr]
            self._over += 1  # counted as errors once as many again were refused (Postfix)
            if self._over <= self.limits.recipients:
                self._exempt = TOO_MANY_RECIPIENTS
            return TOO_MANY_RECIPIENTS
        hook = self._handle_hooks.get(command)
        if hook is None:
            return MISSING
        status = hook(self, self.session, self.envelope, *args)
        if inspect.isawaitable(status):
            status = await status
        self._exempt = status
        return status

    def _set_post_data_state(self) -> None:
        super()._set_post_data_state()  # type: ignore[no-untyped-call]
        self._over = 0

    def _refusing_nul(
        self, command: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        """*method* refusing an argument with a NUL byte in it."""
        refusal = nul_reply(command)

        async def run(arg: str | None) -> None:
            if arg and "\0" in arg:
                await self.push(refusal)
                return
            await method(arg)

        functools.update_wrapper(run, method)  # keeps aiosmtpd's HELP syntax attributes
        return run

    async def push_policy(self, status: str) -> None:
        """Push a reply that is policy (a fault's, a handler's), not counted as an error."""
        self._exempt = status
        await self.push(status)

    async def push(self, status: AnyStr) -> None:
        exempt, self._exempt = self._exempt, None
        if isinstance(status, str):
            counted = status[:1] in ("4", "5") and status is not exempt
            if counted and (status[:3] == "421" or status == _GOODBYE):
                counted = False  # the connection closes anyway
            text = _REWORDED.get(status, status)
            line = text.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") + b"\r\n"
        else:
            counted = status[:1] in (b"4", b"5") and status is not exempt
            line = status + b"\r\n"
        held, reader = self._held, cast(Any, self._reader)
        closing = False
        if counted:
            self._errors -= 1
            if self._errors < 1:  # the last one this session may make: 421, and close
                line += too_many_errors(self.hostname).encode("ascii") + b"\r\n"
                closing = True
        # More of the group is in, or a multi-line reply goes on: answer later.
        elif line[3:4] == b"-" or (line[:3] in _HOLD and reader._buffer):
            if not held:
                self.loop.call_soon(self._flush_held)
            held.append(line)
            return
        if held:
            held.append(line)
            line = b"".join(held)
            held.clear()
        self._writer.write(line)
        if closing:
            await self._close_now()
        await self._writer.drain()

    async def _close_now(self) -> None:
        """Close after what was written, and end the session here: what the client sent after
        is not answered (aiosmtpd's QUIT goes on with the commands it had read)."""
        cast(Any, self._reader)._buffer.clear()
        if self.transport is not None:
            self.transport.close()
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
            await asyncio.sleep(0)  # the cancellation, raised here

    # -- the idle timeout: any byte counts, and 421 before closing -------------------------
    def data_received(self, data: bytes) -> None:
        self._seen = self.loop.time()
        super().data_received(data)

    def _reset_timeout(self, duration: float | None = None) -> None:
        """Armed once; the timer itself checks how long the client has been silent (traffic
        then costs no timer handling)."""
        self._seen = self.loop.time()
        if self._timeout_handle is None:
            self._timeout_handle = self.loop.call_later(
                duration or self._timeout_duration, self._timeout_cb
            )

    def _timeout_cb(self) -> None:
        left = self._timeout_duration - (self.loop.time() - self._seen)
        if left > 0.001:
            self._timeout_handle = self.loop.call_later(left, self._timeout_cb)
            return
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self._flush_held()
        self._writer.write(timed_out(self.hostname).encode("ascii") + b"\r\n")
        transport.close()

    # -- DATA, in chunks ----------------------------------------------------------------
    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, its replies and hook calls, reading the body as
        :mod:`bench.smtp.server` does: lines of any length, the size limit on the whole."""
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        body, reader = Body(self.limits.message_size), cast(Any, self._reader)
        while True:
            chunk: bytes = await reader.read(_READ)
            if not chunk:  # the client is gone: nothing is delivered
                await self._close_now()
                return
            end = body.feed(chunk)
            if end >= 0:
                break
        if end < len(chunk):  # what came after the dot: the next commands
            reader._buffer[:0] = chunk[end:]
        size, content = body.size, body.content()
        del body, chunk
        if content is None:
            self._set_post_data_state()
            await self.push_policy(SIZE_EXCEEDED)  # not a command's error
            return
        self.envelope.content = self.envelope.original_content = content
        del content
        status = MISSING
        if "DATA" in self._handle_hooks:
            status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)
        release_soon(size)

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
