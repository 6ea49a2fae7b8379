"""The runner's side of the worker processes: a fleet of generators that looks like one
:class:`bench.load.generator.Generator`, and a fleet of post offices that looks like one
:class:`bench.observe.postoffice.PostOffice`. Both feed the runner's :class:`Correlator`."""

from __future__ import annotations

import asyncio
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench.config.scenario import Scenario, procs
from bench.core.books import unpack
from bench.core.correlate import Correlator
from bench.core.lost_share import lost_share
from bench.core.metrics import EncodedMetric
from bench.errors import StartupError
from bench.procs.child import (
    GenJob,
    PostJob,
    Worker,
    generator_main,
    lane_share,
    postoffice_main,
)
from bench.procs.messages import Arrivals, Batch, Cancel, Done, Failed, FromWorker, Go, Ready, Stop
from bench.smtp.options import SessionOptions

START_TIMEOUT_S = 60.0


class FleetError(StartupError):
    """A worker process did not start."""


class GeneratorFleet:
    """``workers`` generator processes splitting one schedule: the share of it a lane sends
    (*direction*, the *lane*-th of *lanes*, with *sessions* of ``load.sessions``; by default
    the one lane, sending everything)."""

    def __init__(
        self,
        corr: Correlator,
        sc: Scenario,
        run_id: str,
        host: str,
        port: int,
        opts: SessionOptions,
        key: bytes,
        *,
        direction: str = "send",
        lane: int = 0,
        lanes: int = 1,
        sessions: int = 0,
    ) -> None:
        self.opts, self.key = opts, key
        self.direction, self.lane, self.lanes, self.sessions = direction, lane, lanes, sessions
        self.corr, self.sc, self.run_id, self.host, self.port = corr, sc, run_id, host, port
        self.n = procs(sc.load.workers)
        self.workers: list[Worker] = []
        self._ready: list[asyncio.Future[None]] = []
        self._live: dict[int, dict[str, int]] = {}
        self._in_flight: dict[int, int] = {}
        self._metrics: dict[int, tuple[EncodedMetric, ...]] = {}  # each worker's latest histograms
        self.abort_reason: str | None = None
        self.stopping = False
        self.lost: list[dict[str, Any]] = []  # the workers that died: which, and their share
        self.ended: dict[int, dict[str, int]] = {}  # each worker's counts as it ended (or died)
        self.kind = "generator worker"
        corr.expect_remote()

    @property
    def in_flight(self) -> int:
        return sum(self._in_flight.values())

    def live_counts(self) -> dict[str, int]:
        """Generator-side counts so far, summed over the workers."""
        total: dict[str, int] = {}
        for counts in self._live.values():
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        return total

    def reported_metrics(self, k: int) -> tuple[EncodedMetric, ...]:
        """Worker *k*'s histograms as of its last batch that carried them (() before one)."""
        return self._metrics.get(k, ())

    def _on_message(self, k: int, msg: FromWorker) -> None:
        if isinstance(msg, Ready):
            if not self._ready[k].done():
                self._ready[k].set_result(None)
        elif isinstance(msg, Batch):
            corr = self.corr
            for seq, ns in zip(unpack(msg.accepted_ids), unpack(msg.accepted_ns), strict=True):
                corr.on_remote_accepted(seq, ns)
            for seq in unpack(msg.unaccepted_ids):
                corr.on_remote_unaccepted(seq)
            self._live[k], self._in_flight[k] = msg.counts, msg.in_flight
            if msg.metrics:
                self._metrics[k] = msg.metrics
        elif isinstance(msg, Done):
            self._live.pop(k, None)
            self._in_flight.pop(k, None)
            self._metrics.pop(k, None)
            if msg.totals is not None:
                self.corr.absorb(msg.totals)
                self.ended[k] = msg.totals.counts
            if msg.abort_reason and self.abort_reason is None:
                self.abort_reason = msg.abort_reason

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for k in range(self.n):
            job = GenJob(
                self.sc,
                self.run_id,
                self.host,
                self.port,
                k,
                self.n,
                self.opts,
                self.key,
                self.direction,
                self.lane,
                self.lanes,
                self.sessions,
            )
            self._ready.append(loop.create_future())
            self.workers.append(self._spawn(k, job, partial(self._on_message, k)))
        all_ready = asyncio.gather(*self._ready)
        # Stop waiting as soon as every worker is ready, or one of them has died.
        waits: list[asyncio.Future[Any]] = [all_ready, *(w.done for w in self.workers)]
        await asyncio.wait(
            waits,
            timeout=START_TIMEOUT_S,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not all_ready.done():
            missing = sum(1 for f in self._ready if not f.done())  # before the cancel ends them
            all_ready.cancel()
            for w in self.workers:
                w.send(Cancel())
            await self.close()
            raise FleetError(f"{missing} of {self.n} generator workers did not start")

    def _spawn(self, k: int, job: GenJob, on_message: Callable[[FromWorker], None]) -> Any:
        """Worker *k*: a process here (a subclass may start it elsewhere)."""
        return Worker(generator_main, job, f"generator-{k}", on_message)

    def share(self, k: int) -> int | None:
        """How many sends worker *k*'s share of the schedule plans (None: a closed model)."""
        if self.sc.load.model == "closed":
            return None
        return sum(1 for _ in lane_share(self.sc, self.direction, k, self.n))

    def where(self, k: int) -> str:
        """Where worker *k* ran, for the report of a lost share."""
        return "this host"

    async def run(self) -> None:
        start_ns, start_wall = time.monotonic_ns(), time.time_ns()
        for w in self.workers:
            w.send(Go(start_ns, start_wall))
        ends = await asyncio.gather(*(w.done for w in self.workers))
        await self.close()
        for k, end in enumerate(ends):
            if not isinstance(end, Done):
                self._book_lost(k)
        if self.lost and self.abort_reason is None:
            parts = "; ".join(
                f"{self.kind} {d['worker']} on {d['node']}: {d['share']} planned, "
                f"{d['failed_as_died']} under way booked failed, {d['not_sent']} not sent"
                for d in self.lost
            )
            self.abort_reason = f"{len(self.lost)} {self.kind}(s) died mid-run ({parts})"

    def _book_lost(self, k: int) -> None:
        """Worker *k* died before its totals came: book its share from its last batch."""
        last = self._live.pop(k, None)
        self._in_flight.pop(k, None)
        totals = lost_share(last, self.share(k), metrics=self._metrics.pop(k, ()))
        self.corr.absorb(totals)
        self.ended[k] = totals.counts
        c = totals.counts
        self.lost.append(
            {
                "worker": k,
                "node": self.where(k),
                "share": c["planned"],
                "reported": dict(last or {}),
                "failed_as_died": sum(totals.failed.values()),
                "not_sent": c["not_sent"] - (last or {}).get("not_sent", 0),
            }
        )

    def stop(self, reason: str | None = None) -> None:
        self.stopping = True
        for w in self.workers:
            w.send(Stop())

    def cancel(self) -> None:
        for w in self.workers:
            w.send(Cancel())

    async def close(self) -> None:
        await asyncio.gather(*(w.join() for w in self.workers))


def book_arrivals(corr: Correlator, run_id: str, msg: Arrivals) -> None:
    """Join a batch of arrivals (a post office's, or what a watcher saw) to *corr*'s sends."""
    rows = zip(unpack(msg.ids), unpack(msg.mail_ns), unpack(msg.received_ns), strict=True)
    if msg.marks:
        marks = array("b", msg.marks)
        for (seq, m, r), k in zip(rows, marks, strict=True):
            corr.on_arrival(run_id, seq, m, r, k)
    else:
        for seq, m, r in rows:
            corr.on_arrival(run_id, seq, m, r)
    corr.on_foreign(msg.foreign)


@dataclass(slots=True)
class RefusalCounts:
    """The post office workers' on-purpose refusals, summed as each worker ends."""

    deferred: int = 0
    refused: int = 0


class PostOfficeFleet:
    """``postoffice.workers`` post office processes on one port (SO_REUSEPORT)."""

    def __init__(self, corr: Correlator, sc: Scenario, run_id: str, key: bytes) -> None:
        self.corr, self.sc, self.run_id, self.key = corr, sc, run_id, key
        self.workers: list[Worker] = []
        self.port = 0
        self.on_arrivals: Any = None  # called after each batch (the runner's drain check)
        po = sc.postoffice
        self.refusals = RefusalCounts() if po.defer or po.refuse else None

    def _on_message(self, ready: asyncio.Future[Ready | Failed], msg: FromWorker) -> None:
        if isinstance(msg, Ready | Failed) and not ready.done():
            ready.set_result(msg)
        elif isinstance(msg, Done) and self.refusals is not None:
            self.refusals.deferred += msg.deferred
            self.refusals.refused += msg.refused
        elif isinstance(msg, Arrivals):
            book_arrivals(self.corr, self.run_id, msg)
            if self.on_arrivals is not None:
                self.on_arrivals()

    def _spawn(self, k: int, job: PostJob, on_message: Callable[[FromWorker], None]) -> Any:
        """Post office worker *k*: a process here (a subclass may start it elsewhere)."""
        return Worker(postoffice_main, job, f"postoffice-{k}", on_message)

    def workers_wanted(self) -> int:
        return procs(self.sc.postoffice.workers)

    async def start(self) -> int:
        po = self.sc.postoffice
        loop = asyncio.get_running_loop()
        port = po.listen[1]
        for k in range(self.workers_wanted()):
            job = PostJob(
                po.domain,
                po.listen[0],
                port,
                po.hostname,
                self.run_id,
                po.defer,
                po.refuse,
                self.sc.seed * 1000 + k,  # each worker its own sequence
                self.key,
                read_marks=self.sc.message.mix is not None,
            )
            ready: asyncio.Future[Ready | Failed] = loop.create_future()
            w = self._spawn(k, job, partial(self._on_message, ready))
            self.workers.append(w)
            try:
                msg = await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT_S)
            except TimeoutError:
                msg = Failed("it did not report ready")
            if isinstance(msg, Failed):
                await self.stop()
                raise OSError(f"post office worker {k}: {msg.why}")
            port = msg.port  # the others join the first one's port
        self.port = port
        return port

    async def stop(self) -> None:
        for w in self.workers:
            w.send(Stop())
        await asyncio.gather(
            *(asyncio.wait_for(asyncio.shield(w.done), 10) for w in self.workers),
            return_exceptions=True,
        )
        await asyncio.gather(*(w.join() for w in self.workers))
