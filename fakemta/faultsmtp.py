"""The fake MTA's SMTP protocol with faults and outages (:mod:`fakemta.faults`).

:class:`FaultySMTP` is used instead of :class:`bench.smtp.aioserver.FastSMTP` only when faults or
outages are configured, so the plain path stays as fast as before. It hooks into aiosmtpd at
three places: its own ``_handle_client`` (connect, banner), a wrapper around every command
method (outages; starttls, data, rset, noop, vrfy, quit) and ``_call_handler_hook``, which
aiosmtpd calls once a command has passed its own checks (ehlo, auth, mail, rcpt, dot). The
"body" stage runs right after the 354 has been pushed. Ending a session on purpose closes the
transport and raises :class:`HungUp` (a ``CancelledError``), which ends aiosmtpd's session task
the way a lost connection does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn

from bench.config.faults import TXN_STAGES, Outage
from bench.smtp.aioserver import FastSMTP
from fakemta.faults import (
    OUTAGE_421,
    Decision,
    FaultPlan,
    FaultStats,
    banner_refused_reply,
    closing_reply,
    fault_reply,
)

log = logging.getLogger("fakemta.faults")

_TXN = frozenset(TXN_STAGES)
# commands whose fault is applied before aiosmtpd runs them (the others: in the handler hook)
_COMMAND_STAGES = {
    "STARTTLS": "starttls",
    "DATA": "data",
    "RSET": "rset",
    "NOOP": "noop",
    "VRFY": "vrfy",
    "QUIT": "quit",
}
_HOOK_STAGES = {"EHLO": "ehlo", "HELO": "ehlo", "AUTH": "auth", "MAIL": "mail", "RCPT": "rcpt"}


class HungUp(asyncio.CancelledError):
    """The fake MTA ended the session on purpose."""


class FaultRuntime:
    """What every connection shares: the plan, the counts, the outage in force, who is
    connected."""

    def __init__(self, plan: FaultPlan, stats: FaultStats) -> None:
        self.plan = plan
        self.stats = stats
        self.outage: Outage | None = None
        self.live: set[FaultySMTP] = set()
        self._over = asyncio.Event()
        self._ends_at = 0.0
        self._ids = itertools.count()

        self._timers: list[asyncio.TimerHandle] = []

    def next_connection(self) -> int:
        return next(self._ids)

    def schedule(self, outages: tuple[Outage, ...], refuse: Callable[[bool], None]) -> None:
        """Begin and end *outages* on time (from now); *refuse(True)* closes the listeners,
        *refuse(False)* opens them again."""
        loop = asyncio.get_running_loop()

        def begin(outage: Outage) -> None:
            log.info("outage begins: %s", outage)
            self.begin(outage)
            if outage.kind == "refuse":
                refuse(True)

        def end(outage: Outage) -> None:
            log.info("outage ends: %s", outage)
            self.end(outage)
            if outage.kind == "refuse":
                refuse(False)

        for outage in outages:
            if outage.at <= 0:
                begin(outage)
            else:
                self._timers.append(loop.call_later(outage.at, begin, outage))
            self._timers.append(loop.call_later(outage.end, end, outage))

    def cancel(self) -> None:
        """Forget the outages not yet begun or ended."""
        for timer in self._timers:
            timer.cancel()
        self._timers = []

    def begin(self, outage: Outage) -> None:
        """An outage starts: a "refuse" outage drops every connection (a crash)."""
        self.outage = outage
        self.stats.outages.append(outage)
        self._over = asyncio.Event()
        self._ends_at = asyncio.get_running_loop().time() + outage.duration
        if outage.kind == "refuse":
            self.drop_all(abort=True)

    def end(self, outage: Outage) -> None:
        """The outage ends: after a "stall", the connections it held are closed."""
        if self.outage is not outage:
            return
        self.outage = None
        if outage.kind == "stall":
            self.drop_all(abort=False)
        self._over.set()

    async def wait_over(self) -> None:
        """Return when the outage in force ends (bounded by its end, plus a second)."""
        timeout = max(0.0, self._ends_at - asyncio.get_running_loop().time()) + 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._over.wait(), timeout)

    def drop_all(self, *, abort: bool) -> None:
        for protocol in list(self.live):
            protocol.drop(abort=abort)


class FaultySMTP(FastSMTP):
    """:class:`FastSMTP` that misbehaves as *runtime* says."""

    def __init__(self, handler: Any, *, runtime: FaultRuntime, **options: Any) -> None:
        super().__init__(handler, **options)
        self.rt = runtime
        self.rng = random.Random(0)
        self._greeting: str | None = None
        self._banner_refused = False
        self._body_due = False
        self._conn: dict[str, Decision | None] = {}
        self._txn: dict[str, Decision | None] = {}
        self._first_rcpt: str | None = None
        self._smtp_methods = {
            name: self._wrap(name, method) for name, method in self._smtp_methods.items()
        }

    # -- session ends -----------------------------------------------------------------------

    def drop(self, *, abort: bool = False) -> None:
        """Close the connection (*abort*: without flushing what is unsent)."""
        transport: Any = self.transport
        if transport is not None:
            if abort:
                transport.abort()
            else:  # replies held for a pipelined group go first, as a real server's do
                self._flush_held()
                transport.close()

    async def _hang_up(self, reply: str | None) -> NoReturn:
        if reply is not None:
            with contextlib.suppress(ConnectionError):
                await self.push_policy(reply)
        self.drop()
        raise HungUp

    def connection_lost(self, error: Exception | None) -> None:
        self.rt.live.discard(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        self.rt.live.add(self)
        self.rng = self.rt.plan.rng(self.rt.next_connection())
        try:
            if self.rt.outage is not None:
                await self._outage()
            reply = await self._inject("connect")
            if reply is not None:  # a 4xx/5xx greeting, then close
                await self._hang_up(reply)
            reply = await self._inject("banner")
        except ConnectionError:
            self.drop()
            return
        if reply is not None:  # a 4xx/5xx greeting; then only QUIT (RFC 5321 3.1)
            self._greeting = reply
            self._banner_refused = True
        await super()._handle_client()

    async def _outage(self) -> None:
        """Act out the outage in force: 421, or no reply until it ends, then close."""
        outage = self.rt.outage
        if outage is None or outage.kind == "blackhole":
            return
        if outage.kind == "421":
            await self._hang_up(OUTAGE_421)
        if outage.kind == "stall":
            await self.rt.wait_over()
        await self._hang_up(None)

    # -- replies ----------------------------------------------------------------------------

    async def push(self, status: Any) -> None:
        if self._greeting is not None:  # an injected greeting: policy, not an error
            status, self._greeting = self._greeting, None
            self._exempt = status
        await super().push(status)
        if self._body_due:  # that was the 354
            self._body_due = False
            reply = await self._inject("body", self._first_rcpt)
            if reply is not None:  # the rest of the message is never read: close
                await self._hang_up(reply)

    async def _inject(self, stage: str, user: str | None = None) -> str | None:
        """Apply what is decided for *stage*: sleep for delays, hang up, or return the reply
        that replaces the normal one (None: reply normally)."""
        plan = self.rt.plan
        if stage not in plan.stages:
            return None
        table = self._txn if stage in _TXN else self._conn
        if stage in table:
            decision = table[stage]
        else:
            decision = table[stage] = plan.decide(stage, self.rng, user)
        if decision is None:
            return None
        stats = self.rt.stats
        for f in decision.delays:
            stats.count(f)
            assert f.duration is not None
            await asyncio.sleep(f.duration.sample(self.rng))
        outcome = decision.outcome
        if outcome is None:
            return None
        f = outcome
        stats.count(f)
        if f.kind in ("4xx", "5xx"):
            # what it makes the client get wrong (a pipelined RCPT and DATA after a refused
            # MAIL: 503) is not the client's error: refunded, up to the limit
            self._errors = min(self._errors + 2, self.limits.errors)
            return fault_reply(stage, f.reply_code)
        if f.kind == "accept_drop":
            stats.dropped += 1
            return self._queued()
        if f.kind == "421":
            await self._hang_up(closing_reply(stage))
        if f.kind == "stall":
            assert f.duration is not None
            await asyncio.sleep(f.duration.sample(self.rng))
        await self._hang_up(None)  # disconnect, or the stall is over

    def _queued(self) -> str:
        return f"250 2.0.0 Ok: queued as {self.event_handler.relay.next_qid()}"

    # -- commands ---------------------------------------------------------------------------

    def _wrap(
        self, command: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        stage = _COMMAND_STAGES.get(command)

        async def run(arg: str | None) -> None:
            if self.rt.outage is not None:
                await self._outage()
            if self._banner_refused and command != "QUIT":
                await self.push_policy(banner_refused_reply())
                return
            if stage is not None and self._normal_reply_due(command, arg):
                user = self._first_rcpt if command == "DATA" else None
                reply = await self._inject(stage, user)
                if reply is not None:
                    if command == "DATA":
                        self._set_post_data_state()
                    await self.push_policy(reply)
                    return
                self._body_due = command == "DATA" and "body" in self.rt.plan.stages
            await method(arg)

        functools.update_wrapper(run, method)  # keeps aiosmtpd's HELP syntax attributes
        return run

    def _normal_reply_due(self, command: str, arg: str | None) -> bool:
        """Whether aiosmtpd is about to accept the command (the fault replaces that reply)."""
        if command == "DATA":
            return self.envelope is not None and bool(self.envelope.rcpt_tos) and not arg
        if command == "STARTTLS":
            return not arg and self.tls_context is not None and self._tls_protocol is None
        return True

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        reply: str | None
        if command == "DATA":
            reply = await self._dot()
        else:
            stage = _HOOK_STAGES.get(command)
            if stage is None:
                reply = None
            elif stage == "mail":  # a transaction starts
                self._txn, self._first_rcpt = {}, None
                reply = await self._inject(stage)
            elif stage == "rcpt":
                if self._first_rcpt is None:
                    self._first_rcpt = str(args[0])
                reply = await self._inject(stage, self._first_rcpt)
            else:
                reply = await self._inject(stage)
                if reply is not None and command == "EHLO":
                    self._exempt = reply
                    return [reply]
        if reply is not None:
            self._exempt = reply  # an injected reply: policy, not the client's error
            return reply
        return await super()._call_handler_hook(command, *args)

    async def _dot(self) -> str | None:
        """The end of DATA: outages, then the dot stage; None: queue the message."""
        outage = self.rt.outage
        if outage is not None:
            if outage.kind == "blackhole":
                self.rt.stats.dropped += 1
                return self._queued()
            await self._outage()
        return await self._inject("dot", self._first_rcpt)
