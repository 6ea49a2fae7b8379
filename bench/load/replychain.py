"""The generator's fast path on the pipelined client: one depth slot of a session sending
message after message from the protocol's reply callbacks.

A worker coroutine that sends, awaits the outcome and loops costs a task wake-up, a future and
a scheduled write per message, and its next envelope misses the write that carries the body
before it. A :class:`Chain` instead takes the next planned message the moment the previous one
ends, inside the callback that read the reply, so body and next envelope leave in one write.
The worker wakes only when the chain breaks: the schedule ended, the run is stopping, or the
connection is no longer usable (the worker's slow path reconnects). In open-loop models a chain
waits for a planned time with a loop timer instead of a coroutine sleep. Every message still
ends in exactly one state; see :meth:`Chain.run` for cancellation.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Protocol

from bench.core.books import Recorder
from bench.core.message import MessageFactory
from bench.smtp.outcome import Outcome, Session
from bench.smtp.pipeclient import STAGE_NAMES, Message
from bench.timing.pacer import Pacer, Wakeup

if TYPE_CHECKING:
    from bench.smtp.pipesession import PipelinedSession

Planned = tuple[int, int]  # (seq, planned_ns)


class ChainOwner(Protocol):
    """What a chain needs of its generator (:class:`bench.load.generator.Generator`)."""

    corr: Recorder
    factory: MessageFactory
    pacer: Pacer
    chains: set[Chain]
    in_flight: int
    stopping: bool
    start_ns: int
    start_wall_ns: int

    def take_next(self) -> Planned | None: ...

    def record(
        self, seq: int, planned_ns: int, start_ns: int, out: Outcome, session: Session
    ) -> None: ...


class Chain:
    """Sends on *session* for *gen* until the chain breaks."""

    __slots__ = ("fut", "gen", "loop", "m", "planned_ns", "seq", "session", "start_ns", "timer")

    def __init__(self, gen: ChainOwner, session: PipelinedSession) -> None:
        self.gen = gen
        self.session = session
        self.loop = asyncio.get_running_loop()
        self.fut: asyncio.Future[Planned | None] = self.loop.create_future()
        self.seq = self.planned_ns = self.start_ns = 0
        self.m: Message | None = None  # the message in flight
        self.timer: Wakeup | None = None  # waiting to send (seq, planned_ns)

    async def run(self, seq: int, planned_ns: int) -> Planned | None:
        """Send *seq* (due now; the session must be ready) and what follows it. Returns a
        planned send that fell due when the session was not usable, for the caller to send.
        Cancelled, the message in flight is recorded as failed ("interrupted") and a planned
        send not yet made as not sent."""
        gen = self.gen
        gen.chains.add(self)
        self._send(seq, planned_ns)
        try:
            return await self.fut
        except asyncio.CancelledError:
            m = self.m
            if m is not None:
                self.m = None
                m.done = None
                gen.in_flight -= 1
                gen.corr.on_failed(self.seq, STAGE_NAMES[m.stage], "interrupted")
                self.session.close()
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
                gen.corr.on_not_sent()
            raise
        finally:
            gen.chains.discard(self)

    def stop(self) -> None:
        """The run is stopping: a planned send still waiting for its time is not made."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.gen.corr.on_not_sent()
            self._end(None)

    def _end(self, leftover: Planned | None) -> None:
        if not self.fut.done():
            self.fut.set_result(leftover)

    def _send(self, seq: int, planned_ns: int) -> None:
        gen = self.gen
        f = gen.factory
        body = f.payload(seq, gen.start_wall_ns + (planned_ns - gen.start_ns))
        cmds = f.envelope(seq, self.session.sized)
        start = time.monotonic_ns()
        self.seq, self.planned_ns, self.start_ns = seq, planned_ns, start
        gen.corr.on_sent(seq, planned_ns, start)
        gen.in_flight += 1
        # Callers check session.connected first and nothing between can close it; were it
        # closed all the same, the message still ends in one state and the chain breaks.
        self.m = self.session.submit_now(cmds, body, len(cmds) - 2, self._done)
        if self.m is None:
            self._done(None, Outcome("failed", "mail", error="disconnected"))

    def _done(self, m: Message | None, out: Outcome) -> None:
        self.m = None
        gen = self.gen
        gen.in_flight -= 1
        cancelled = self.fut.done()
        if cancelled and out.kind == "failed":  # the run is being cancelled around it
            out = Outcome("failed", out.stage, error="interrupted")
        gen.record(self.seq, self.planned_ns, self.start_ns, out, self.session)
        if cancelled:
            return
        if not self.session.connected:
            self._end(None)
            return
        nxt = gen.take_next()
        if nxt is None:
            self._end(None)
            return
        self._due(*nxt)

    def _due(self, seq: int, planned_ns: int) -> None:
        delay = planned_ns - time.monotonic_ns()
        if delay > 0:
            # The pacer wakes to the nanosecond (its fallback, loop timers, may fire early:
            # _fire checks).
            self.seq, self.planned_ns = seq, planned_ns
            self.timer = self.gen.pacer.call_at(planned_ns, self._fire)
        else:
            self._send(seq, planned_ns)

    def _fire(self) -> None:
        self.timer = None
        if self.fut.done():
            return
        seq, planned_ns = self.seq, self.planned_ns
        if self.gen.stopping:
            self.gen.corr.on_not_sent()
            self._end(None)
        elif time.monotonic_ns() < planned_ns:
            self._due(seq, planned_ns)
        elif not self.session.connected:
            self._end((seq, planned_ns))
        else:
            self._send(seq, planned_ns)
