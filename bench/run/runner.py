"""One run, end to end: start the post office, the system and the mailbox watcher, generate
load on each lane, drain, judge.

The runner joins the edges (post office, fake MTA process, generators, watcher) to the pure
core (schedule, correlate, metrics, sla). At the end it freezes what the run produced into a
:class:`~bench.run.record.RunRecord`, which :func:`bench.run.conclude.conclude` judges, and
writes result.json, whether the run completed, failed or was interrupted.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from bench.config.scenario import Scenario
from bench.core import schedule
from bench.core.availability import Availability
from bench.core.correlate import Correlator
from bench.core.hdr import new_histogram
from bench.core.message import Identity
from bench.core.metrics import window_stats
from bench.errors import StartupError
from bench.observe.mailboxes import Mailboxes
from bench.observe.postoffice import PostOffice
from bench.procs.parent import PostOfficeFleet
from bench.procs.ray_fleet import RayPlan
from bench.run.conclude import conclude
from bench.run.intervallog import Interval
from bench.run.lane_driver import drive_lane
from bench.run.lanes import Lane, aim, live_totals, merged_metrics, session_split, targets_line
from bench.run.record import RunRecord, RunStatus, make_run_id
from bench.run.results import Observer, Reserve, RunResult, Snapshot, versions, write_result
from bench.run.system_under_test import ChildFakeMta, start_system
from bench.run.timeseries import series_for
from bench.run.wiring import (
    attach_fates,
    make_postoffice,
    refusal_counts,
    remote_watch,
    resolve_workers,
    session_options,
    system_info,
    usable_cores,
)
from bench.smtp.options import SessionOptions
from bench.timing.gcfreeze import freeze_startup, thaw
from bench.verdict.abort import AbortGate, Trip

NS = 1_000_000_000
WINDOW_S = 5  # the live view's "last seconds"
INTERRUPT_GRACE_S = 5.0  # after Ctrl-C, how long sends already under way may finish


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
        credentials: tuple[str, str] | None = None,
        imap_password: str | None = None,
        ray: RayPlan | None = None,
    ) -> None:
        # "auto" worker counts become numbers for this machine (recorded in the result)
        cores = usable_cores()
        self.sc = scenario = resolve_workers(scenario, cores)
        self.ray = ray  # the send lane's generators as Ray actors (cli/run.py)
        self.credentials = credentials
        self.imap_password = imap_password
        self.started = datetime.now(UTC)
        self.run_id = make_run_id(scenario.name, self.started)
        self.key = secrets.token_bytes(16)  # the run's secret: its mail's identity tags
        self.out_dir = out_dir or Path("results") / self.run_id
        self._reserve = Reserve(self.out_dir)
        self._mta: ChildFakeMta | None = None
        self.observer = observer
        self.source, self.overrides = source, overrides
        late_ns = round(scenario.load.late_after * NS)
        sessions = session_split(scenario)
        self.lanes = [
            Lane(d, Correlator(self.run_id, late_ns, d), sessions[d]) for d in scenario.directions
        ]
        self.by_dir = {lane.direction: lane for lane in self.lanes}
        attach_fates(scenario, [lane.corr for lane in self.lanes])
        # The post office's books: the send lane's (a receive-only run expects nothing there).
        self.corr = (
            self.by_dir["send"].corr
            if "send" in self.by_dir
            else Correlator(self.run_id, late_ns, "send")
        )
        self.mailboxes: Mailboxes | None = None
        self.availability: Availability | None = None
        self._po: PostOffice | PostOfficeFleet | None = None
        self.phase = "starting"
        self.status: RunStatus = "completed"
        self.reason: str | None = None
        self._interrupts = 0
        self._drained = asyncio.Event()
        self._draining = False
        self._drain_over = False  # the drain ran its course: what is still awaited is lost
        self._stop = asyncio.Event()
        self._window: collections.deque[HdrHistogram] = collections.deque(maxlen=WINDOW_S)
        self._last_accepted = 0
        self._t0 = time.monotonic()
        actors = len(ray.placement) if ray is not None else None
        self.system_info: dict[str, Any] = system_info(scenario, cores, actors)  # run.system
        self.fakemta_stats: dict[str, Any] | None = None
        self.traceback: str | None = None
        self._expected = schedule.expected_count(scenario.load)
        self._duration = schedule.total_duration(scenario.load)
        self._gate = AbortGate(scenario.sla.thresholds)
        self.trip: Trip | None = None  # the abort_on_fail threshold that stopped the run
        self.series = series_for(scenario, self.out_dir, self.run_id)
        if self.series is not None:
            for lane in self.lanes:
                lane.corr.metrics.track_intervals()

    # -- control -------------------------------------------------------------------------
    def interrupt(self, signal_name: str = "SIGINT") -> None:
        """First call: stop sending and skip the drain. Second: abandon sends in progress.
        After an abort_on_fail threshold stopped the run, the first call abandons them.
        *signal_name*: what stopped the run, for its reason (the first one counts)."""
        self._interrupts += 1
        if self.trip is None:
            self.status = "interrupted"
            self.reason = self.reason or f"interrupted ({signal_name})"
        self._halt(now=self._interrupts > 1 or self.trip is not None)

    def _halt(self, *, now: bool) -> None:
        self._stop.set()
        if self.mailboxes is not None:
            self.mailboxes.abandon()
        for lane in self.lanes:
            gen = lane.generator
            if gen is None:
                continue
            if now:
                gen.cancel()
            else:
                gen.stop()
                # Sends in progress get a short grace, not a whole SMTP timeout.
                asyncio.get_running_loop().call_later(INTERRUPT_GRACE_S, gen.cancel)

    def _check_abort(self) -> None:
        """Stop the run (status "aborted") when an abort_on_fail threshold fails."""
        if self.series is None or self._stop.is_set() or self.status != "completed":
            return
        elapsed = self.series.elapsed(time.monotonic())
        trip = self._gate.check(elapsed, merged_metrics(self.lanes), self.series.last_window)
        if trip is not None:
            self.trip = trip
            self.status, self.reason = "aborted", trip.reason
            self._halt(now=False)

    def _on_arrival(self, ident: Identity | None, mail_ns: int, received_ns: int) -> None:
        self._arrived(self.corr, ident, mail_ns, received_ns)

    def _on_visible(self, ident: Identity | None, visible_ns: int) -> None:
        self._arrived(self.by_dir["receive"].corr, ident, visible_ns, visible_ns)

    def _arrived(self, corr: Correlator, ident: Identity | None, first: int, last: int) -> None:
        if ident is None or not ident.genuine(self.key):  # not ours, or forged
            corr.on_foreign()
        else:
            corr.on_arrival(ident.run, ident.id, first, last, ident.marks)
        self._check_drained()

    def _check_drained(self) -> None:
        if self._draining and all(lane.in_flight == 0 for lane in self.lanes):
            self._drained.set()

    # -- the run -------------------------------------------------------------------------
    async def run(self) -> RunResult:
        sc = self.sc
        try:
            self._reserve.take()
        except OSError as exc:  # result.json must still be written: try it without
            self.status, self.reason = "error", f"no space for result.json: {exc.strerror}"
            return self._conclude()
        po = make_postoffice(
            sc, self.corr, self.run_id, self.key, self._on_arrival, self._check_drained, self.ray
        )
        self._po = po
        ticker: asyncio.Task[None] | None = None
        try:
            try:
                po_port = await po.start()
            except OSError as exc:
                host, port = sc.postoffice.listen
                raise StartupError(
                    f"the post office cannot listen on {host}:{port}: {exc.strerror or exc}"
                ) from None
            po_host: str | None = getattr(po, "relay_host", None)  # on another Ray node
            self.system_info["postoffice"] = f"{po_host or sc.postoffice.listen[0]}:{po_port}"
            if "receive" in self.by_dir:
                corr, ray = self.by_dir["receive"].corr, self.ray
                watch = remote_watch(sc, ray, corr, self.run_id, self.key, self._check_drained)
                self.mailboxes = Mailboxes(sc, self._on_visible, self.imap_password, remote=watch)
            system = await start_system(sc, po_port, self.mailboxes, self.credentials, po_host)
            self._mta = system.mta
            self.system_info.update(aim(self.lanes, system.submit, system.inbound))
            if self.mailboxes is not None:
                await self.mailboxes.start()
            opts = session_options(sc, system.ca_file, self.credentials)
            self._announce()
            freeze_startup()
            if self.series is not None:
                self.series.start(time.monotonic(), time.time())
            ticker = asyncio.ensure_future(self._tick())
            self.availability = Availability(time.monotonic_ns(), sc.sla.availability_window)
            for lane in self.lanes:
                lane.corr.attach_availability(self.availability)  # workers' records merge
            if not self._stop.is_set():
                await asyncio.gather(*(self._send(lane, opts) for lane in self.lanes))
            await self._drain()
        except StartupError as exc:
            self.status, self.reason = "error", str(exc)
        except Exception as exc:  # a bug must not cost the user their results
            self.status = "error"
            self.reason = f"internal error: {type(exc).__name__}: {exc}"
            self.traceback = traceback.format_exc()
        finally:
            thaw()
            self.phase = "stopping"
            if ticker is not None:
                if ticker.done() and not ticker.cancelled() and ticker.exception():
                    self.status = "error"  # the live view died: say so, do not hide it
                    self.reason = f"internal error in the live view: {ticker.exception()!r}"
                ticker.cancel()
            await self._stop_all(self._mta, po)
        return self._conclude()

    async def _stop_all(self, mta: ChildFakeMta | None, po: PostOffice | PostOfficeFleet) -> None:
        if self.mailboxes is not None:
            try:
                await self.mailboxes.stop()  # a last look first: nothing visible is missed
            except Exception as exc:  # the books must still close
                self.status, self.reason = "error", f"mailbox watcher: {exc}"
        if mta is not None:
            self.fakemta_stats = await mta.stop()
        await po.stop()
        # post office actors, or the watcher actor, that died (Ray)
        lost = getattr(po, "lost_reason", None) or getattr(self.mailboxes, "lost_reason", None)
        if lost and self.status == "completed":
            self.status, self.reason = "aborted", lost
        if self.mailboxes is not None:
            self.mailboxes.cleanup()
        for lane in self.lanes:
            lane.corr.finish(stopped=not self._drain_over)
        self.phase = "done"
        if self.observer is not None:
            self.observer.update(self.snapshot())

    def _announce(self) -> None:
        if self.observer is not None:
            where = targets_line(self.lanes)
            self.observer.started(
                f"run {self.run_id}: {where} ({self.sc.system.kind}), post office at "
                f"{self.system_info['postoffice']}, results in {self.out_dir}"
            )

    async def _send(self, lane: Lane, opts: SessionOptions) -> None:
        def sending() -> None:
            self._t0 = time.monotonic()
            self.phase = "sending"

        sc, ray = self.sc, self.ray
        reason = await drive_lane(
            lane, sc, self.run_id, opts, self.lanes, self.availability, sending, self.key, ray
        )
        self._aborted(reason)

    def _aborted(self, reason: str | None) -> None:
        if reason and self.status == "completed":
            self.status, self.reason = "aborted", reason
            for lane in self.lanes:  # the other lane stops too
                if lane.generator is not None:
                    lane.generator.stop()

    async def _drain(self) -> None:
        if self._stop.is_set() or self.status != "completed":
            return
        if all(lane.in_flight == 0 for lane in self.lanes):
            self._drain_over = True
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
        self._drain_over = not self._stop.is_set()

    async def _tick(self) -> None:
        """Once a second (on the second, skipping missed ones): the live view's window, the
        time series' interval histograms and counts, the abort_on_fail thresholds."""
        lane, series = self.lanes[0], self.series
        due = time.monotonic()
        while True:
            due += max(1, int(time.monotonic() - due) + 1)
            await asyncio.sleep(due - time.monotonic())
            delay, now = lane.corr.delay_metric, time.monotonic()
            if series is None:
                self._window.append(lane.corr.metrics[delay].take_interval())
            else:  # a metric at a time, letting due sends go between them
                pieces: dict[str, HdrHistogram] = {}
                for _ in series.take_steps(merged_metrics(self.lanes), pieces):
                    await asyncio.sleep(0)
                piece = pieces.get(delay)
                self._window.append(piece if piece is not None else new_histogram())
            snap = self.snapshot()
            if self.observer is not None:
                self.observer.update(snap)
            died = self._mta.exit_reason() if self._mta is not None else None
            if died and self.status == "completed":  # the measurement is void: say so, stop
                self.status, self.reason = "error", died
                self._halt(now=True)
            self._last_accepted = snap.counts["accepted"]
            if series is not None:
                closed: list[Interval] = []
                for _ in series.tick_steps(now, snap.counts, closed):
                    await asyncio.sleep(0)
                if closed and self._gate:
                    self._check_abort()

    def snapshot(self) -> Snapshot:
        counts, sending = live_totals(self.lanes)
        elapsed = time.monotonic() - self._t0 if self.phase != "starting" else 0.0
        rate = counts["accepted"] - self._last_accepted
        if self.phase == "done":  # the last frame: the run's mean rate, not the last second's
            rate = round(counts["accepted"] / max(min(elapsed, self._duration), 1e-9))
        return Snapshot(
            phase=self.phase,
            elapsed_s=elapsed,
            duration_s=schedule.total_duration(self.sc.load),
            drain_s=self.sc.load.drain,
            counts=counts,
            sending=sending,
            awaiting=sum(lane.in_flight for lane in self.lanes),
            rate=float(rate),
            window=window_stats(list(self._window)),
            expected=self._expected,
            window_metric=self.lanes[0].corr.delay_metric,
        )

    # -- the verdict ---------------------------------------------------------------------
    def _conclude(self) -> RunResult:
        """Close the last interval, freeze what the run produced, judge it, write result.json
        (into the space reserved for it), then the optional files."""
        sc, series = self.sc, self.series
        if series is not None:
            counts, metrics = self.snapshot().counts, merged_metrics(self.lanes)
            series.close(time.monotonic(), time.time(), counts, metrics)
        record = RunRecord(
            scenario=sc,
            run_id=self.run_id,
            source=self.source,
            overrides=self.overrides,
            started=self.started,
            ended=datetime.now(UTC),
            status=self.status,
            reason=self.reason,
            traceback=self.traceback,
            system=dict(self.system_info),
            versions=versions(),
            lanes=tuple(self.lanes),
            availability=self.availability,
            windows=series.windows_for(sc.sla.thresholds) if series is not None else None,
            trip=self.trip,
            postoffice=refusal_counts(self._po) if self._po is not None else None,
            receive=self.mailboxes.info() if self.mailboxes is not None else None,
            fakemta=self.fakemta_stats,
            warnings=tuple(series.dropped) if series is not None else (),
            ray=self.ray.info() if self.ray is not None else None,
        )
        c = conclude(record)
        path = write_result(self.out_dir, c.doc, self._reserve, series)
        return RunResult(c.doc, path, c.verdict, self.status, self.reason, c.exit_code)
