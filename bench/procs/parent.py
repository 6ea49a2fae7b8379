"""The runner's side of the worker processes: a fleet of generators that looks like one
:class:`bench.load.generator.Generator`, and a fleet of post offices that looks like one
:class:`bench.observe.postoffice.PostOffice`. Both feed the runner's :class:`Correlator`."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Any

from bench.config.scenario import Scenario, procs
from bench.core.books import unpack
from bench.core.correlate import Correlator
from bench.errors import StartupError
from bench.procs.child import GenJob, PostJob, Worker, generator_main, postoffice_main
from bench.smtp.options import SessionOptions

START_TIMEOUT_S = 60.0


class FleetError(StartupError):
    """A worker process did not start."""


class GeneratorFleet:
    """``workers`` generator processes splitting one schedule."""

    def __init__(
        self,
        corr: Correlator,
        sc: Scenario,
        run_id: str,
        host: str,
        port: int,
        opts: SessionOptions,
    ) -> None:
        self.opts = opts
        self.corr, self.sc, self.run_id, self.host, self.port = corr, sc, run_id, host, port
        self.n = procs(sc.load.workers)
        self.workers: list[Worker] = []
        self._ready: list[asyncio.Future[None]] = []
        self._live: dict[int, dict[str, int]] = {}
        self._in_flight: dict[int, int] = {}
        self.abort_reason: str | None = None
        self.stopping = False
        corr.remote = True

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

    def _on_message(self, k: int, msg: Any) -> None:
        kind = msg[0]
        if kind == "ready":
            if not self._ready[k].done():
                self._ready[k].set_result(None)
        elif kind == "batch":
            _, acc_ids, acc_ns, unacc, counts, in_flight = msg
            corr = self.corr
            for seq, ns in zip(unpack(acc_ids), unpack(acc_ns), strict=True):
                corr.on_remote_accepted(seq, ns)
            for seq in unpack(unacc):
                corr.on_remote_unaccepted(seq)
            self._live[k], self._in_flight[k] = counts, in_flight
        elif kind == "done":
            _, final, reason = msg
            self._live.pop(k, None)
            self._in_flight.pop(k, None)
            self.corr.absorb(final)
            if reason and self.abort_reason is None:
                self.abort_reason = reason

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for k in range(self.n):
            job = GenJob(self.sc, self.run_id, self.host, self.port, k, self.n, self.opts)
            self._ready.append(loop.create_future())
            self.workers.append(
                Worker(generator_main, job, f"generator-{k}", partial(self._on_message, k))
            )
        all_ready = asyncio.gather(*self._ready)
        # Stop waiting as soon as every worker is ready, or one of them has died.
        await asyncio.wait(
            [all_ready, *(w.done for w in self.workers)],
            timeout=START_TIMEOUT_S,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not all_ready.done():
            all_ready.cancel()
            missing = sum(1 for f in self._ready if not f.done())
            for w in self.workers:
                w.send("cancel")
            await self.close()
            raise FleetError(f"{missing} of {self.n} generator workers did not start")

    async def run(self) -> None:
        start_ns, start_wall = time.monotonic_ns(), time.time_ns()
        for w in self.workers:
            w.send(("go", start_ns, start_wall))
        ends = await asyncio.gather(*(w.done for w in self.workers))
        await self.close()
        dead = [k for k, end in enumerate(ends) if end[0] != "done"]
        if dead and self.abort_reason is None:
            # Its last batches and totals never came: the books cannot balance. Say so.
            self.abort_reason = (
                f"generator worker(s) {dead} died before reporting; "
                "their messages are not accounted for"
            )

    def stop(self, reason: str | None = None) -> None:
        self.stopping = True
        for w in self.workers:
            w.send("stop")

    def cancel(self) -> None:
        for w in self.workers:
            w.send("cancel")

    async def close(self) -> None:
        await asyncio.gather(*(w.join() for w in self.workers))


class PostOfficeFleet:
    """``postoffice.workers`` post office processes on one port (SO_REUSEPORT)."""

    def __init__(self, corr: Correlator, sc: Scenario, run_id: str) -> None:
        self.corr, self.sc, self.run_id = corr, sc, run_id
        self.workers: list[Worker] = []
        self.port = 0
        self.on_arrivals: Any = None  # called after each batch (the runner's drain check)

    def _on_message(self, ready: asyncio.Future[Any], msg: Any) -> None:
        if msg[0] in ("ready", "error") and not ready.done():
            ready.set_result(msg)
        elif msg[0] == "arrivals":
            _, ids, mails, recvs, foreign = msg
            corr = self.corr
            for seq, m, r in zip(unpack(ids), unpack(mails), unpack(recvs), strict=True):
                corr.on_arrival(self.run_id, seq, m, r)
            corr.counts.foreign += foreign
            if self.on_arrivals is not None:
                self.on_arrivals()

    async def start(self) -> int:
        po = self.sc.postoffice
        loop = asyncio.get_running_loop()
        port = po.listen[1]
        for k in range(procs(po.workers)):
            job = PostJob(
                po.domain,
                po.listen[0],
                port,
                po.hostname,
                self.run_id,
                po.defer,
                po.refuse,
                self.sc.seed * 1000 + k,  # each worker its own sequence
            )
            ready: asyncio.Future[Any] = loop.create_future()
            w = Worker(postoffice_main, job, f"postoffice-{k}", partial(self._on_message, ready))
            self.workers.append(w)
            try:
                msg = await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT_S)
            except TimeoutError:
                msg = ("error", "it did not report ready")
            if msg[0] != "ready":
                await self.stop()
                raise OSError(f"post office worker {k}: {msg[1]}")
            port = int(msg[1])  # the others join the first one's port
        self.port = port
        return port

    async def stop(self) -> None:
        for w in self.workers:
            w.send("stop")
        await asyncio.gather(
            *(asyncio.wait_for(asyncio.shield(w.done), 10) for w in self.workers),
            return_exceptions=True,
        )
        await asyncio.gather(*(w.join() for w in self.workers))
