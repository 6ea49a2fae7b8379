"""The load generator: a pool of persistent SMTP sessions working through the schedule.

Open-loop models (constant, poisson, steps): an idle session takes the next planned send, waits
for its planned time, and sends. When every session is busy a planned send waits for one; the
wait shows as schedule lag and its latency still counts from the planned time. Closed-loop
model: each session sends back to back (with an optional think time) until the duration ends.
Every message taken from the schedule ends in exactly one state in the :class:`Correlator`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from functools import partial

from bench.config.names import CONNECTION_STAGES
from bench.config.sections import LoadConfig
from bench.core.availability import Availability, failure_kind
from bench.core.books import Recorder
from bench.core.message import MessageFactory
from bench.core.schedule import total_duration
from bench.core.stages import StageTimes
from bench.load.replychain import Chain
from bench.smtp.aiosession import SmtpSession
from bench.smtp.options import SessionOptions
from bench.smtp.outcome import Outcome, Session
from bench.smtp.pipesession import PipelinedSession
from bench.timing.pacer import Pacer, resolve

NS = 1_000_000_000


def make_session(
    client: str, host: str, port: int, opts: SessionOptions, stages: StageTimes | None
) -> Session:
    """The generator's SMTP session: the pipelined client, or aiosmtplib's (one command at a
    time, for comparison and for servers that mishandle pipelining)."""
    if client == "aiosmtplib":
        return SmtpSession(host, port, opts, stages)
    return PipelinedSession(host, port, opts, stages)


class Generator:
    """Drives *sessions* SMTP sessions through a schedule, recording into *correlator*."""

    def __init__(
        self,
        *,
        correlator: Recorder,
        factory: MessageFactory,
        session_factory: Callable[[], Session],
        sessions: int,
        depth: int = 1,
        schedule: Iterator[tuple[int, int]] | None,
        start_ns: int,
        start_wall_ns: int,
        end_ns: int,
        think_time_ns: int = 0,
        max_messages: int | None = None,
        abort_after_connect_failures: int = 20,
        closed_ids: Iterator[int] | None = None,
        availability: Availability | None = None,
    ) -> None:
        self.availability = availability
        self.corr = correlator
        self.factory = factory
        self.session_factory = session_factory
        self.n_sessions = sessions
        self.depth = depth
        self.schedule = schedule
        self.start_ns, self.start_wall_ns, self.end_ns = start_ns, start_wall_ns, end_ns
        self.think_time_ns = think_time_ns
        self.max_messages = max_messages
        self.abort_after = abort_after_connect_failures
        self.in_flight = 0
        self.abort_reason: str | None = None
        self.stopping = False
        self._schedule: Iterator[tuple[int, int]] | None = None
        self._seq = closed_ids if closed_ids is not None else itertools.count()
        self._sleepers: set[asyncio.Future[None]] = set()
        self._sessions: list[Session] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.chains: set[Chain] = set()  # the fast path's chains now running
        self._chaining = think_time_ns == 0
        self.pacer: Pacer  # made by run(), in the running loop

    @classmethod
    def for_load(
        cls,
        load: LoadConfig,
        *,
        correlator: Recorder,
        factory: MessageFactory,
        session_factory: Callable[[], Session],
        sessions: int,
        schedule: Iterator[tuple[int, int]] | None,
        start_ns: int,
        start_wall_ns: int,
        closed_ids: Iterator[int] | None = None,
        availability: Availability | None = None,
    ) -> Generator:
        """A generator for a scenario's ``[load]``: its depth, duration, think time and message
        cap come from *load*; the rest is this process's share of the run."""
        return cls(
            correlator=correlator,
            factory=factory,
            session_factory=session_factory,
            sessions=sessions,
            depth=load.depth,
            schedule=schedule,
            start_ns=start_ns,
            start_wall_ns=start_wall_ns,
            end_ns=start_ns + round(total_duration(load) * NS),
            think_time_ns=round(load.think_time * NS),
            max_messages=load.max_messages,
            closed_ids=closed_ids,
            availability=availability,
        )

    def live_counts(self) -> dict[str, int]:
        """Counts not yet in the lane's books: none, this generator records as it goes."""
        return {}

    # -- control -------------------------------------------------------------------------
    async def run(self) -> None:
        """Send until the schedule (or the duration) ends, or :meth:`stop` is called."""
        self._schedule = self.schedule
        self._sessions = [self.session_factory() for _ in range(self.n_sessions)]
        self.pacer = Pacer(asyncio.get_running_loop())
        worker = self._open_worker if self._schedule is not None else self._closed_worker
        # depth workers share each session: their messages are pipelined on it in order.
        self._tasks = [
            asyncio.ensure_future(worker(s)) for _ in range(self.depth) for s in self._sessions
        ]
        try:
            # Workers that cancel() abandoned end cancelled, each having booked its message;
            # that is how a cancelled run ends, not an error. Any other failure is raised.
            ends = await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._count_unplanned_rest()
            await asyncio.gather(*(s.quit() for s in self._sessions), return_exceptions=True)
            self.pacer.close()
        for end in ends:
            if isinstance(end, BaseException) and not isinstance(end, asyncio.CancelledError):
                raise end

    def stop(self, reason: str | None = None) -> None:
        """Take no more planned sends; sends in progress finish (see :meth:`cancel`)."""
        if reason and self.abort_reason is None:
            self.abort_reason = reason
        self.stopping = True
        for fut in self._sleepers:
            if not fut.done():
                fut.set_result(None)
        for chain in list(self.chains):
            chain.stop()

    def cancel(self) -> None:
        """Abandon sends in progress: each is recorded as failed ("interrupted")."""
        self.stop()
        for t in self._tasks:
            t.cancel()

    # -- workers -------------------------------------------------------------------------
    async def _sleep_until(self, when_ns: int) -> None:
        """Wait until *when_ns* (or :meth:`stop`); a send must never start before its planned
        time, so an early wake-up waits again for the remainder."""
        loop = asyncio.get_running_loop()
        while not self.stopping:
            if time.monotonic_ns() >= when_ns:
                return
            fut: asyncio.Future[None] = loop.create_future()
            wakeup = self.pacer.call_at(when_ns, partial(resolve, fut))
            self._sleepers.add(fut)
            try:
                await fut
            finally:
                wakeup.cancel()
                self._sleepers.discard(fut)

    async def _open_worker(self, session: Session) -> None:
        assert self._schedule is not None
        for seq, offset in self._schedule:
            self.corr.on_planned()
            if self.stopping:
                self.corr.on_not_sent()
                break
            planned_ns = self.start_ns + offset
            try:
                await self._sleep_until(planned_ns)
            except asyncio.CancelledError:
                self.corr.on_not_sent()
                raise
            if self.stopping:
                self.corr.on_not_sent()
                break
            await self._send(session, seq, planned_ns)

    async def _closed_worker(self, session: Session) -> None:
        while not self.stopping:
            now = time.monotonic_ns()
            if now >= self.end_ns:
                break
            seq = next(self._seq)
            if self.max_messages is not None and seq >= self.max_messages:
                break
            self.corr.on_planned()
            await self._send(session, seq, now)
            if self.think_time_ns:
                await self._sleep_until(time.monotonic_ns() + self.think_time_ns)

    def take_next(self) -> tuple[int, int] | None:
        """The next planned send (seq, planned_ns), counted as planned, for a chain to make;
        None when there is none or the run is stopping (a send taken then is not sent)."""
        sched = self._schedule
        if sched is None:
            now = time.monotonic_ns()
            if self.stopping or now >= self.end_ns:
                return None
            seq = next(self._seq)
            if self.max_messages is not None and seq >= self.max_messages:
                return None
            self.corr.on_planned()
            return seq, now
        item = next(sched, None)
        if item is None:
            return None
        self.corr.on_planned()
        if self.stopping:
            self.corr.on_not_sent()
            return None
        return item[0], self.start_ns + item[1]

    async def _send(self, session: Session, seq: int, planned_ns: int) -> None:
        if self._chaining and isinstance(session, PipelinedSession) and session.connected:
            leftover = await Chain(self, session).run(seq, planned_ns)
            if leftover is None:
                return
            seq, planned_ns = leftover
        rcpts = self.factory.recipients_of(seq)
        data = self.factory.build(seq, rcpts, self.start_wall_ns + (planned_ns - self.start_ns))
        start_ns = time.monotonic_ns()
        self.corr.on_sent(seq, planned_ns, start_ns)
        self.in_flight += 1
        try:
            out = await session.send(self.factory.sender, rcpts, data)
        except asyncio.CancelledError:
            self.corr.on_failed(seq, session.stage, "interrupted")
            session.close()
            raise
        finally:
            self.in_flight -= 1
        self.record(seq, planned_ns, start_ns, out, session)

    def record(
        self, seq: int, planned_ns: int, start_ns: int, out: Outcome, session: Session
    ) -> None:
        if self.availability is not None:
            labelled = self.corr.fates is not None
            kind = failure_kind(out.kind, out.stage, out.code, labelled)
            self.availability.record(planned_ns, self.factory.user_ids(seq), kind)
        if out.kind == "accepted":
            self.corr.on_accepted(seq, planned_ns, start_ns, out.accepted_ns)
            return
        if out.kind == "rejected":
            self.corr.on_rejected(seq, out.stage, out.code)
        else:
            self.corr.on_failed(seq, out.stage, out.error)
        if out.stage in CONNECTION_STAGES and not any(s.connects for s in self._sessions):
            # No connection ever became usable: give up once every session has tried (and at
            # least 3 attempts failed, so one refused connect is no verdict), or after
            # abort_after attempts however many sessions there are.
            failures = sum(s.connect_failures for s in self._sessions)
            every = all(s.connect_failures for s in self._sessions) and failures >= 3
            if every or failures >= self.abort_after:
                what = f"{out.code} {out.error}".strip() if out.code else out.error
                self.stop(
                    f"no connection to the system at {session.host}:{session.port} became "
                    f"usable: {failures} connection attempts by {len(self._sessions)} "
                    f"session(s) failed, the last at {out.stage}: {what}"
                )

    def _count_unplanned_rest(self) -> None:
        """Planned sends never taken (the run stopped early) are planned and not sent."""
        if self._schedule is None:
            return
        rest = sum(1 for _ in self._schedule)
        self.corr.on_planned(rest)
        self.corr.on_not_sent(rest)
