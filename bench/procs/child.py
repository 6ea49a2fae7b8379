"""Generator and post office in worker processes, reporting to the runner over pipes.

A generator worker takes every N-th planned send (the schedule is split, not copied), keeps
its own counts and histograms, and every :data:`BATCH_S` sends the parent the ids it saw
accepted (with the times of their 250s) and the ids that failed, as packed arrays; at the end
it sends its totals and encoded histograms, which the parent merges exactly. Post office
workers share one port (SO_REUSEPORT) and send arrivals in batches the same way. Every process
uses ``time.monotonic_ns()``: one clock for the whole host.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing as mp
import signal
import threading
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from bench.config.scenario import Scenario
from bench.core import schedule
from bench.core.availability import Availability
from bench.core.books import GenRecorder
from bench.core.corpus import ClassDraw
from bench.core.fates import FateBooks
from bench.core.message import Identity, MessageFactory
from bench.core.stages import StageTimes
from bench.load.generator import Generator, make_session
from bench.observe.postoffice import PostOffice
from bench.observe.postoffice_replies import Refusals
from bench.procs.messages import (
    Arrivals,
    Batch,
    Cancel,
    Died,
    Done,
    Failed,
    FromWorker,
    Go,
    Ready,
    ToWorker,
)
from bench.smtp.limits import Limits
from bench.smtp.options import SessionOptions
from bench.smtp.outcome import Session
from bench.timing.gcfreeze import freeze_startup

BATCH_S = 0.05
METRICS_S = 1.0  # how often a batch carries the worker's histograms so far


@dataclass(frozen=True, slots=True)
class GenJob:
    scenario: Scenario
    run_id: str
    host: str
    port: int
    worker: int
    workers: int
    opts: SessionOptions
    key: bytes = b""  # the run's secret: the messages' identity tags
    # The lane it sends for: "send" (to submission) or "receive" (inbound, to the MX, in
    # mailbox.domain); the lane's index of how many (a closed model: lanes take alternate ids)
    # and its sessions (0: all of load.sessions).
    direction: str = "send"
    lane: int = 0
    lanes: int = 1
    sessions: int = 0


def lane_share(sc: Scenario, direction: str, k: int, n: int) -> Iterator[tuple[int, int]]:
    """The (seq, offset) pairs of the planned sends that worker *k* of *n* of the *direction*
    lane sends (an open model's). Pure."""
    load = sc.load
    planned = enumerate(schedule.planned_offsets(load, sc.seed))
    mine = schedule.lane(planned, direction, load.direction, load.receive_share)
    return schedule.split(mine, k, n)


def _reader(conn: Connection, deliver: Callable[[Any], None], on_eof: Callable[[], None]) -> None:
    """Read *conn* in a thread of its own and hand each message to the event loop.

    A thread, not ``loop.add_reader``: uvloop makes a watched descriptor non-blocking, and a
    multiprocessing pipe is one descriptor for both directions, so a large send on it could
    then fail half-way with EAGAIN.
    """
    loop = asyncio.get_running_loop()

    def run() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                with contextlib.suppress(RuntimeError):  # the loop may be gone already
                    loop.call_soon_threadsafe(on_eof)
                return
            try:
                loop.call_soon_threadsafe(deliver, msg)
            except RuntimeError:
                return

    threading.Thread(target=run, name="pipe-reader", daemon=True).start()


def control(conn: Connection, on_message: Callable[[ToWorker], None]) -> None:
    """Call *on_message* with each message the parent sends (EOF counts as :class:`Cancel`)."""
    _reader(conn, on_message, lambda: on_message(Cancel()))


async def _generator(job: GenJob, conn: Connection) -> None:
    sc, load = job.scenario, job.scenario.load
    rec = GenRecorder(round(load.late_after * 1e9))
    draw = ClassDraw.of(sc)
    if draw is not None:
        rec.fates = FateBooks(draw)
    domain = sc.mailbox.domain if job.direction == "receive" else None
    factory = MessageFactory.for_scenario(sc, job.run_id, job.key, domain)
    n, k = job.workers, job.worker
    total = job.sessions or load.sessions
    sessions = total // n + (1 if k < total % n else 0)
    plan = lane_share(sc, job.direction, k, n) if load.model != "closed" else None

    stages = StageTimes(rec.metrics)

    def session() -> Session:
        return make_session(load.client, job.host, job.port, job.opts, stages)

    # Start together: each worker says it is ready, the parent answers with the start time.
    go: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
    gen: Generator | None = None

    def on_message(msg: ToWorker) -> None:
        if isinstance(msg, Go):
            if not go.done():
                go.set_result((msg.start_ns, msg.start_wall_ns))
        elif gen is None:
            if not go.done():
                go.cancel()
        elif isinstance(msg, Cancel):
            gen.cancel()
        else:
            gen.stop()

    control(conn, on_message)
    conn.send(Ready())
    try:
        start_ns, start_wall_ns = await go
    except asyncio.CancelledError:
        conn.send(Done(rec.final()))
        return
    availability = rec.start(Availability(start_ns, sc.sla.availability_window))
    gen = Generator.for_load(
        load,
        correlator=rec,
        factory=factory,
        session_factory=session,
        sessions=max(sessions, 1),
        schedule=plan,
        start_ns=start_ns,
        start_wall_ns=start_wall_ns,
        closed_ids=itertools.count(job.lane + k * job.lanes, n * job.lanes),
        availability=availability,
    )

    def send_batch(metrics: bool = False) -> None:
        assert gen is not None
        hist = rec.encoded_metrics() if metrics else ()
        conn.send(Batch(*rec.take_batch(), rec.counts.as_dict(), gen.in_flight, hist))

    async def flusher() -> None:
        every = max(round(METRICS_S / BATCH_S), 1)
        for n in itertools.count(1):
            await asyncio.sleep(BATCH_S)
            send_batch(metrics=n % every == 0)

    task = asyncio.ensure_future(flusher())
    freeze_startup()
    try:
        await gen.run()
    finally:
        task.cancel()
        send_batch()
        conn.send(Done(rec.final(), gen.abort_reason))


def generator_main(job: GenJob, conn: Connection) -> None:
    """Entry point of a generator worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    uvloop.run(_generator(job, conn))


@dataclass(frozen=True, slots=True)
class PostJob:
    domain: str
    host: str
    port: int
    hostname: str
    run_id: str
    defer: float = 0.0
    refuse: float = 0.0
    seed: int = 1
    key: bytes = b""  # the run's secret: only mail with a genuine tag is the run's
    message_size_limit: int = 64 << 20  # what the post office takes (see run/wiring.py)
    read_marks: bool = False  # labelled traffic: read each copy's fate marks


class ArrivalBuffer:
    """The run's arrivals (a post office's, or what a watcher saw) gathered between batches:
    ids with their first and last times (and fate marks), and how many were not the run's
    (no identity, another run's, or a forged tag)."""

    def __init__(self, run_id: str, key: bytes, read_marks: bool) -> None:
        self.run_id, self.key, self.read_marks = run_id, key, read_marks
        self._reset()

    def _reset(self) -> None:
        self.ids, self.first, self.last, self.marks = array("q"), array("q"), array("q"), array("b")
        self.foreign = 0

    def add(self, ident: Identity | None, first_ns: int, last_ns: int) -> None:
        if ident is None or ident.run != self.run_id or not ident.genuine(self.key):
            self.foreign += 1
            return
        self.ids.append(ident.id)
        self.first.append(first_ns)
        self.last.append(last_ns)
        if self.read_marks:
            self.marks.append(ident.marks)

    def take(self) -> Arrivals | None:
        """What was gathered since the last call, as one batch (None: nothing)."""
        if not self.ids and not self.foreign:
            return None
        first, last = self.first.tobytes(), self.last.tobytes()
        batch = Arrivals(self.ids.tobytes(), first, last, self.foreign, self.marks.tobytes())
        self._reset()
        return batch


async def ship_until(stop: asyncio.Event, buf: ArrivalBuffer, conn: Any) -> None:
    """Send *buf*'s batches every :data:`BATCH_S` until *stop* is set (and once more then)."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), BATCH_S)
        ship(buf, conn)


def ship(buf: ArrivalBuffer, conn: Any) -> None:
    batch = buf.take()
    if batch is not None:
        conn.send(batch)


async def _postoffice(job: PostJob, conn: Connection) -> None:
    buf = ArrivalBuffer(job.run_id, job.key, job.read_marks)
    refusals = Refusals(job.defer, job.refuse, job.seed) if job.defer or job.refuse else None
    po = PostOffice(
        job.domain,
        buf.add,
        host=job.host,
        port=job.port,
        hostname=job.hostname,
        reuse_port=True,
        refusals=refusals,
        limits=Limits(message_size=job.message_size_limit),
        read_marks=job.read_marks,
    )
    try:
        port = await po.start()
    except OSError as exc:
        conn.send(Failed(f"{exc.strerror or exc}"))
        return
    freeze_startup()
    conn.send(Ready(port))
    stop = asyncio.Event()
    control(conn, lambda msg: stop.set())

    await ship_until(stop, buf, conn)
    await po.stop()
    ship(buf, conn)
    r = po.handler.refusals
    conn.send(Done(deferred=r.deferred, refused=r.refused) if r is not None else Done())


def postoffice_main(job: PostJob, conn: Connection) -> None:
    """Entry point of a post office worker process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    uvloop.run(_postoffice(job, conn))


class Worker:
    """A worker process and its pipe; messages are handed to *on_message* on the loop."""

    def __init__(
        self,
        target: Callable[..., None],
        job: Any,
        name: str,
        on_message: Callable[[FromWorker], None],
    ) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(job, child), name=name, daemon=True)
        self.on_message = on_message
        self.done: asyncio.Future[Done | Failed | Died] = asyncio.get_running_loop().create_future()
        self.proc.start()
        child.close()
        _reader(self.conn, self._deliver, self._eof)

    def _deliver(self, msg: FromWorker) -> None:
        self.on_message(msg)
        if isinstance(msg, Done | Failed) and not self.done.done():
            self.done.set_result(msg)

    def _eof(self) -> None:
        if not self.done.done():
            self.done.set_result(Died())

    def send(self, msg: ToWorker) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self.conn.send(msg)

    async def join(self, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self.proc.join, timeout)
        if self.proc.is_alive():
            self.proc.kill()
            await loop.run_in_executor(None, self.proc.join, 3.0)
        self.conn.close()
