"""One run, end to end: start the post office and the system, generate load, drain, judge.

The runner joins the edges (post office, fake MTA process, generator) to the pure core
(schedule, correlate, metrics, sla) and always writes result.json, whether the run completed,
failed or was interrupted.
"""

from __future__ import annotations

import asyncio
import collections
import time
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from hdrh.histogram import HdrHistogram

from bench import schedule
from bench.correlate import Correlator, Counts
from bench.fleet import FleetError, GeneratorFleet, PostOfficeFleet
from bench.generator import Generator
from bench.message import Identity, MessageFactory
from bench.metrics import window_stats
from bench.postoffice import PostOffice
from bench.results import IDENTITY, SCHEMA, versions, write_json_atomic
from bench.scenario import Scenario
from bench.sender import Session, SmtpSession
from bench.sla import Verdict, evaluate
from bench.smtpclient import PipelinedSession
from bench.system import ChildFakeMta, SystemStartError
from fakemta.server import FakeMtaConfig

NS = 1_000_000_000
WINDOW_S = 5  # the live view's "last seconds"
INTERRUPT_GRACE_S = 5.0  # after Ctrl-C, how long sends already under way may finish


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the live view shows, once a second."""

    phase: str
    elapsed_s: float
    duration_s: float
    drain_s: float
    counts: dict[str, int]
    sending: int
    awaiting: int
    rate: float
    window: tuple[float, float, float] | None
    expected: int | None = None  # planned sends in the whole schedule (None: closed model)


class Observer(Protocol):
    def started(self, line: str) -> None: ...

    def update(self, snap: Snapshot) -> None: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    doc: dict[str, Any]
    path: Path
    verdict: Verdict
    status: str
    reason: str | None
    exit_code: int


def make_session(client: str, host: str, port: int, ehlo: str, timeout: float) -> Session:
    """The generator's SMTP session: the pipelined client, or aiosmtplib's (one command at a
    time, for comparison and for servers that mishandle pipelining)."""
    if client == "aiosmtplib":
        return SmtpSession(host, port, ehlo=ehlo, timeout=timeout)
    return PipelinedSession(host, port, ehlo=ehlo, timeout=timeout)


def make_run_id(name: str, now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + name


class Runner:
    """Carries out one scenario; call :meth:`interrupt` (e.g. on SIGINT) to end it early."""

    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path | None,
        observer: Observer | None,
        *,
        source: str = "",
        overrides: tuple[str, ...] = (),
    ) -> None:
        self.sc = scenario
        self.started = datetime.now(UTC)
        self.run_id = make_run_id(scenario.name, self.started)
        self.out_dir = out_dir or Path("results") / self.run_id
        self.observer = observer
        self.source, self.overrides = source, overrides
        self.corr = Correlator(self.run_id, round(scenario.load.late_after * NS))
        self.phase = "starting"
        self.status = "completed"
        self.reason: str | None = None
        self.generator: Generator | GeneratorFleet | None = None
        self._interrupts = 0
        self._drained = asyncio.Event()
        self._draining = False
        self._stop = asyncio.Event()
        self._window: collections.deque[HdrHistogram] = collections.deque(maxlen=WINDOW_S)
        self._last_accepted = 0
        self._t0 = time.monotonic()
        self.system_info: dict[str, Any] = {"kind": scenario.system.kind}
        self.fakemta_stats: dict[str, Any] | None = None
        self.traceback: str | None = None
        self._expected = schedule.expected_count(scenario.load)

    # -- control -------------------------------------------------------------------------
    def interrupt(self) -> None:
        """First call: stop sending and skip the drain. Second: abandon sends in progress."""
        self._interrupts += 1
        self.status = "interrupted"
        self.reason = self.reason or "interrupted (SIGINT)"
        self._stop.set()
        gen = self.generator
        if gen is not None:
            if self._interrupts == 1:
                gen.stop()
                # Sends in progress get a short grace, not a whole SMTP timeout.
                asyncio.get_running_loop().call_later(INTERRUPT_GRACE_S, gen.cancel)
            else:
                gen.cancel()

    def _on_arrival(self, ident: Identity | None, mail_ns: int, received_ns: int) -> None:
        if ident is None:
            self.corr.on_foreign()
        else:
            self.corr.on_arrival(ident.run, ident.id, mail_ns, received_ns)
        self._check_drained()

    def _check_drained(self) -> None:
        if self._draining and self.corr.in_flight == 0:
            self._drained.set()

    # -- the run -------------------------------------------------------------------------
    async def run(self) -> RunResult:
        sc = self.sc
        po: PostOffice | PostOfficeFleet
        if sc.postoffice.workers > 1:
            po = PostOfficeFleet(self.corr, sc, self.run_id)
            po.on_arrivals = self._check_drained
        else:
            po = PostOffice(
                sc.postoffice.domain,
                self._on_arrival,
                host=sc.postoffice.listen[0],
                port=sc.postoffice.listen[1],
                hostname=sc.postoffice.hostname,
            )
        mta: ChildFakeMta | None = None
        ticker: asyncio.Task[None] | None = None
        try:
            try:
                po_port = await po.start()
            except OSError as exc:
                host, port = sc.postoffice.listen
                raise SystemStartError(
                    f"the post office cannot listen on {host}:{port}: {exc.strerror or exc}"
                ) from None
            self.system_info["postoffice"] = f"{sc.postoffice.listen[0]}:{po_port}"
            if sc.system.kind == "fakemta":
                mta = ChildFakeMta(self._fakemta_config(po_port))
                host, port = sc.fakemta.listen[0], await mta.start()
            else:
                assert sc.system.submit is not None
                host, port = sc.system.submit
            self.system_info["submit"] = f"{host}:{port}"
            if self.observer is not None:
                self.observer.started(
                    f"run {self.run_id}: submitting to {host}:{port} ({sc.system.kind}), "
                    f"post office at {self.system_info['postoffice']}, "
                    f"results in {self.out_dir}"
                )
            ticker = asyncio.ensure_future(self._tick())
            if not self._stop.is_set():
                await self._send(host, port)
            await self._drain()
        except SystemStartError as exc:
            self.status, self.reason = "error", str(exc)
        except Exception as exc:  # a bug must not cost the user their results
            self.status = "error"
            self.reason = f"internal error: {type(exc).__name__}: {exc}"
            self.traceback = traceback.format_exc()
        finally:
            self.phase = "stopping"
            if ticker is not None:
                if ticker.done() and not ticker.cancelled() and ticker.exception():
                    self.status = "error"  # the live view died: say so, do not hide it
                    self.reason = f"internal error in the live view: {ticker.exception()!r}"
                ticker.cancel()
            if mta is not None:
                self.fakemta_stats = await mta.stop()
            await po.stop()
            self.corr.finish()
            self.phase = "done"
            if self.observer is not None:
                self.observer.update(self.snapshot())
        return self._conclude()

    def _fakemta_config(self, po_port: int) -> FakeMtaConfig:
        sc = self.sc
        return FakeMtaConfig(
            relay_host=sc.postoffice.listen[0]
            if sc.postoffice.listen[0] != "0.0.0.0"
            else "127.0.0.1",
            relay_port=po_port,
            listen_host=sc.fakemta.listen[0],
            listen_port=sc.fakemta.listen[1],
            hostname=sc.fakemta.hostname,
            relay_domains=(sc.postoffice.domain,),
            processing_delay=sc.fakemta.processing_delay,
            delivery_workers=sc.fakemta.delivery_workers,
            seed=sc.seed,
            timeout=sc.load.timeout,
        )

    async def _send(self, host: str, port: int) -> None:
        sc, load = self.sc, self.sc.load
        factory = MessageFactory.for_scenario(sc, self.run_id)
        if load.workers > 1:
            fleet = GeneratorFleet(self.corr, sc, self.run_id, host, port)
            self.generator = fleet
            try:
                await fleet.start()
            except FleetError as exc:
                raise SystemStartError(str(exc)) from None
            self._t0 = time.monotonic()
            self.phase = "sending"
            await fleet.run()
            if fleet.abort_reason:
                self.status, self.reason = "aborted", fleet.abort_reason
            return
        start_ns, start_wall = time.monotonic_ns(), time.time_ns()
        duration_ns = round(schedule.total_duration(load) * NS)
        offsets = None if load.model == "closed" else schedule.planned_offsets(load, sc.seed)
        self.generator = Generator(
            correlator=self.corr,
            factory=factory,
            session_factory=lambda: make_session(
                load.client, host, port, sc.system.ehlo, load.timeout
            ),
            sessions=load.sessions,
            depth=load.depth,
            schedule=None if offsets is None else enumerate(offsets),
            start_ns=start_ns,
            start_wall_ns=start_wall,
            end_ns=start_ns + duration_ns,
            think_time_ns=round(load.think_time * NS),
            max_messages=load.max_messages,
        )
        self._t0 = time.monotonic()
        self.phase = "sending"
        await self.generator.run()
        if self.generator.abort_reason:
            self.status, self.reason = "aborted", self.generator.abort_reason

    async def _drain(self) -> None:
        if self._stop.is_set() or self.status != "completed" or self.corr.in_flight == 0:
            return
        self.phase = "draining"
        self._draining = True
        waiters = [
            asyncio.ensure_future(self._drained.wait()),
            asyncio.ensure_future(self._stop.wait()),
        ]
        _, pending = await asyncio.wait(
            waiters, timeout=self.sc.load.drain, return_when=asyncio.FIRST_COMPLETED
        )
        for w in pending:
            w.cancel()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self._window.append(self.corr.metrics["send_delay"].take_interval())
            snap = self.snapshot()
            if self.observer is not None:
                self.observer.update(snap)
            self._last_accepted = snap.counts["accepted"]

    def snapshot(self) -> Snapshot:
        g = self.generator
        counts = self.corr.counts.as_dict()
        if isinstance(g, GeneratorFleet):
            for k, v in g.live_counts().items():
                counts[k] += v
        return Snapshot(
            phase=self.phase,
            elapsed_s=time.monotonic() - self._t0 if self.phase != "starting" else 0.0,
            duration_s=schedule.total_duration(self.sc.load),
            drain_s=self.sc.load.drain,
            counts=counts,
            sending=g.in_flight if g else 0,
            awaiting=self.corr.in_flight,
            rate=float(counts["accepted"] - self._last_accepted),
            window=window_stats(list(self._window)),
            expected=self._expected,
        )

    # -- the verdict ---------------------------------------------------------------------
    def _conclude(self) -> RunResult:
        sc = self.sc
        counts: Counts = self.corr.counts
        verdict = evaluate(sc.sla.profile, sc.sla.thresholds, self.corr.metrics, counts.undelivered)
        ended = datetime.now(UTC)
        doc: dict[str, Any] = {
            "schema": SCHEMA,
            "run": {
                "id": self.run_id,
                "scenario": sc.as_run(),
                "scenario_file": self.source,
                "overrides": list(self.overrides),
                "seed": sc.seed,
                "started_at": self.started.isoformat(),
                "ended_at": ended.isoformat(),
                "status": self.status,
                "reason": self.reason,
                "system": self.system_info,
                "versions": versions(),
            },
            "counts": counts.as_dict(),
            "accounting": {"identity": IDENTITY, "holds": counts.identity_holds},
            "outcomes": self.corr.outcomes.as_dict(),
            "metrics": self.corr.metrics.summaries(),
            "sla": verdict.as_dict(),
        }
        if self.traceback:
            doc["run"]["traceback"] = self.traceback
        if self.fakemta_stats is not None:
            doc["fakemta"] = self.fakemta_stats
        path = self.out_dir / "result.json"
        write_json_atomic(path, doc)
        code = 3 if self.status != "completed" else 0 if verdict.passed else 1
        return RunResult(doc, path, verdict, self.status, self.reason, code)
