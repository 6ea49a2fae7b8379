"""Runs the capacity search: each step a whole run (:class:`bench.run.runner.Runner`) at the
rate :class:`~bench.capacity.search.Search` asks for, with its result folder under the
search's, its counts sampled while it sends (the backlog), judged, then the confirmations at
80/100/120 %. Keeps the budget (a step that cannot finish in what is left is not started; one
under way when the budget ends is stopped), stops cleanly on :meth:`Driver.interrupt`, and
writes capacity.json after every step."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from bench.capacity import document
from bench.capacity.population import POPULATION_SIZE_CAP, StepMail, population_doc
from bench.capacity.search import Found, Search, confirm_rates
from bench.capacity.step import Judged, judge
from bench.config.scenario import Scenario
from bench.core.backlog import Sample
from bench.core.corpus import mean_real_size
from bench.errors import ExitCode
from bench.run.runner import Runner

FIRST_OVERHEAD_S = 3.0  # a step's start and stop before one was measured (fake MTA: ~1-2 s)


class StepView(Protocol):
    """What the search shows as it goes: a line a step."""

    def step(self, entry: dict[str, Any], found: Found, time_left_s: float) -> None: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    doc: dict[str, Any]
    path: Path
    exit_code: ExitCode


class Driver:
    """The search of *scenario* into *out_dir*; *view* gets a line a step."""

    def __init__(
        self,
        scenario: Scenario,
        out_dir: Path,
        view: StepView | None,
        *,
        source: str = "",
        overrides: tuple[str, ...] = (),
        credentials: tuple[str, str] | None = None,
        imap_password: str | None = None,
    ) -> None:
        self.sc, self.out_dir, self.view = scenario, out_dir, view
        self.cfg = scenario.capacity
        self.source, self.overrides = source, overrides
        self.credentials, self.imap_password = credentials, imap_password
        self.search = Search(
            start=self.cfg.start_rate,
            precision=self.cfg.precision,
            growth=self.cfg.growth,
            repeats=self.cfg.repeats,
            max_rate=self.cfg.max_rate,
        )
        self.steps: list[dict[str, Any]] = []
        self.confirm: list[dict[str, Any]] = []
        self.started = datetime.now(UTC)
        self._t0 = time.monotonic()
        self.deadline = self._t0 + self.cfg.budget
        self._runner: Runner | None = None
        self._cut: str | None = None  # why the search stopped early
        self._error: str | None = None
        self._overhead = FIRST_OVERHEAD_S
        self._last: dict[str, Any] | None = None  # the entry not yet shown
        self._signalled = False  # stopped by a signal: exit 3, as an interrupted run

    # -- control -------------------------------------------------------------------------
    def interrupt(self, signal_name: str = "SIGINT") -> None:
        """Stop the search: the step under way stops (a second call abandons its sends)."""
        self._cut = self._cut or f"interrupted ({signal_name})"
        self._signalled = True
        if self._runner is not None:
            self._runner.interrupt(signal_name)

    def time_left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    # -- the search ----------------------------------------------------------------------
    async def run(self) -> Outcome:
        path = self._write()
        while self._cut is None and self._error is None:
            probe = self.search.next()
            if probe is None:
                break
            judged = await self._step(probe.rate, self.cfg.measure, probe.trial, len(self.steps))
            if judged is None:
                self._show()
                break
            self.search.record(judged.trial)
            self._show()
            path = self._write()
        found = self.search.found()
        if self._cut is None and self._error is None and found.sustainable is not None:
            await self._confirm(found.sustainable)
        path = self._write()
        return Outcome(self._doc(), path, self._exit_code())

    async def _confirm(self, rate_found: float) -> None:
        """The confirmations: 80, 100 and 120 % of the rate found, ``confirm`` long each."""
        if self.cfg.confirm <= 0:
            return
        for share, rate in confirm_rates(rate_found):
            if self._cut is not None or self._error is not None:
                return
            judged = await self._step(rate, self.cfg.confirm, 0, len(self.confirm), share)
            self._show()
            if judged is None:
                return
            self._write()

    def _exit_code(self) -> ExitCode:
        if self._error is not None or self._signalled:
            return ExitCode.RUN
        return ExitCode.PASS if self.search.found().sustainable is not None else ExitCode.FAIL

    def _scenario(self, rate: float, measure: float, seed: int) -> Scenario:
        load = self.sc.load
        model = load.model if load.model in ("constant", "poisson") else "constant"
        step_load = load.model_copy(
            update={
                "model": model,
                "rate": rate,
                "duration": self.cfg.warmup + measure,
                "drain": self.cfg.drain,
                "max_messages": None,
            }
        )
        return self.sc.model_copy(
            update={"load": step_load, "seed": seed, "message": self._message()}
        )

    def _has_population(self) -> bool:
        p = self.sc.population
        return p.users is not None or p.expected_peak is not None

    def _message(self) -> Any:
        """The steps' [message]: with a population and no labelled traffic, real mail's sizes
        (the whole built-in distribution), so the rate found holds for the population's mail."""
        m = self.sc.message
        if not self._has_population() or m.mix is not None:
            return m
        return m.model_copy(update={"sizes": "real", "size": POPULATION_SIZE_CAP})

    def step_mail(self) -> StepMail:
        """What the steps sent: recipients a message, mean size and how sized."""
        m = self._message()
        mean = mean_real_size(m.size) if m.sizes == "real" else float(m.size)
        return StepMail(m.recipients, mean, m.sizes, m.size)

    async def _step(
        self, rate: float, measure: float, trial: int, index: int, share: float | None = None
    ) -> Judged | None:
        """Run one step; its judgement (None: it was cut short, or the run failed)."""
        sending = self.cfg.warmup + measure
        left = self.time_left()
        if left < sending + self._overhead:
            self._cut = (
                f"budget: {left:.1f}s left, a step at {rate:g}/s needs "
                f"~{sending + self._overhead:.1f}s"
            )
            return None
        kind = "confirm" if share is not None else "step"
        folder = self.out_dir / f"{kind}s" / f"{index + 1:02d}-{rate:g}"
        seed = self.sc.seed + trial
        step_sc = self._scenario(rate, measure, seed)
        overrides = (*self.overrides, f"load.rate={rate:g}", f"seed={seed}")
        runner = Runner(
            step_sc,
            folder,
            None,
            source=self.source,
            overrides=overrides,
            credentials=self.credentials,
            imap_password=self.imap_password,
        )
        self._runner = runner
        samples: list[Sample] = []
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.time_left(), runner.interrupt, "budget")
        sampler = asyncio.ensure_future(self._sample(runner, samples))
        t0 = time.monotonic()
        try:
            result = await runner.run()
        finally:
            timer.cancel()
            sampler.cancel()
            self._runner = None
        wall = time.monotonic() - t0
        self._overhead = max(wall - sending, 0.5)
        entry_base = {"trial": trial, "seed": seed, "wall_s": round(wall, 3)}
        folder_rel = str(folder.relative_to(self.out_dir))
        if result.status == "error" or (
            result.status == "aborted" and result.exit_code == ExitCode.RUN
        ):  # the step could not be carried out (a silent port, nothing connects): as `run`, 3
            self._error = f"step at {rate:g}/s: {result.reason}"
        elif result.status != "completed" and self._cut is None:
            self._cut = "budget ended during a step" if self.time_left() <= 0 else result.reason
        if result.status != "completed":
            entry = {"rate": rate, "verdict": result.status, "reason": result.reason}
            self._add(kind, {**entry, **entry_base, "result": folder_rel}, share)
            return None
        judged = judge(rate, result.doc, samples, (self.cfg.warmup, sending), self.cfg)
        self._add(kind, {**judged.entry, **entry_base, "result": folder_rel}, share)
        return judged

    def _add(self, kind: str, entry: dict[str, Any], share: float | None) -> None:
        entry = {"kind": kind, **entry}
        if share is not None:
            self.confirm.append({"share": share, **entry})
        else:
            self.steps.append(entry)
        self._last = self.confirm[-1] if share is not None else entry

    def _show(self) -> None:
        """The live line of the step just run (after the search took it in)."""
        last, self._last = self._last, None
        if last is not None and self.view is not None:
            self.view.step(last, self.search.found(), self.time_left())

    async def _sample(self, runner: Runner, samples: list[Sample]) -> None:
        """The run's cumulative counts every ``sample_interval`` while it sends."""
        every = self.cfg.sample_interval
        while True:
            snap = runner.snapshot()
            if snap.phase == "sending":
                c = snap.counts
                samples.append(Sample(snap.elapsed_s, c["accepted"], c["delivered"]))
            await asyncio.sleep(every)

    # -- the document --------------------------------------------------------------------
    def _doc(self) -> dict[str, Any]:
        if self._error is not None:
            status, reason = "error", self._error
        elif self._cut is not None:
            status, reason = "cut_short", self._cut
        elif self.search.done:
            status, reason = "completed", None
        else:
            status, reason = "cut_short", "the search has not ended"
        found = self.search.found()
        head = {
            "scenario": self.sc.name,
            "scenario_file": self.source,
            "overrides": list(self.overrides),
            "started_at": self.started.isoformat(),
            "budget_s": self.cfg.budget,
            "settings": self.cfg.model_dump(mode="json"),
        }
        return document.build(
            head=head,
            found=found,
            precision=self.cfg.precision,
            steps=self.steps,
            confirm=self.confirm,
            status=status,
            reason=reason,
            wall_s=time.monotonic() - self._t0,
            population=population_doc(self.sc.population, found.sustainable, self.step_mail()),
        )

    def _write(self) -> Path:
        return document.write(self.out_dir, self._doc())
