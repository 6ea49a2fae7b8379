"""The capacity search's rate sequence. Pure: the driver asks :meth:`Search.next` for the next
probe, runs it and hands the :class:`Trial` back to :meth:`Search.record`.

Grow geometrically from the start rate until a step fails, then bisect between the highest
rate that passed and the lowest that failed until they are within the precision. A failing
step that was overloaded measures what the system did deliver (its *hint*): the next probe
goes just under it, and the one after just above the proven rate, which ends most searches two
steps after the first failure. A borderline trial is repeated (the driver seeds each repeat
anew), as is a failing start rate (it alone would end the search: up to :data:`START_TRIALS` times
even with ``repeats = 1``), and the rate is judged by
the majority of its trials, a tie failing.

Two rates come out, as FD.io's MLRsearch finds a zero-loss and a partial-loss rate in one
search: the highest rate with no fault at all (every message delivered, every check passed)
and the highest within the SLA, thresholds and keeping up; and above each, the first signal
that failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_RATE = 1_000_000.0
CONFIRM = (0.8, 1.0, 1.2)  # the confirmation loads, shares of the rate found
START_TRIALS = 3  # a failing start rate runs up to this many times, whatever ``repeats``


@dataclass(frozen=True, slots=True)
class Trial:
    """One step's outcome: *passed* (SLA, thresholds, keeping up), *fault_free* (passed, and
    no message rejected, failed or lost), the names of the checks that failed in order
    (*failed*; *faults*: what kept it from being fault-free), *borderline* (a signal near its
    limit: worth a repeat) and *hint* (an overloaded step's measured delivered rate)."""

    rate: float
    passed: bool
    fault_free: bool
    failed: tuple[str, ...] = ()
    faults: tuple[str, ...] = ()
    borderline: bool = False
    hint: float | None = None


@dataclass(frozen=True, slots=True)
class Probe:
    """Run *rate*; *trial* is its repeat number (0 the first), for the seed."""

    rate: float
    trial: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """A rate judged from its trials (the majority; a tie fails)."""

    rate: float
    passed: bool
    fault_free: bool
    trials: tuple[Trial, ...]
    phase: str  # "grow" or "bisect"

    @property
    def failed(self) -> tuple[str, ...]:
        for t in self.trials:
            if not t.passed:
                return t.failed
        return ()

    @property
    def faults(self) -> tuple[str, ...]:
        for t in self.trials:
            if not t.fault_free:
                return t.faults or t.failed
        return ()


@dataclass(frozen=True, slots=True)
class Found:
    """The search's answer so far (None: no rate proven)."""

    sustainable: float | None
    no_fault: float | None
    failed_by: str | None  # the first signal that failed above ``sustainable``
    no_fault_failed_by: str | None  # ... above ``no_fault``
    lowest_failing: float | None
    done: bool
    reason: str


@dataclass
class Search:
    """*start*: the first rate (msgs/s); *precision*: stop when the lowest failing rate is
    within this share above the highest passing one; *growth*: the factor between rates
    while growing; *repeats*: at most this many trials of a borderline rate."""

    start: float
    precision: float = 0.05
    growth: float = 2.0
    repeats: int = 3
    max_rate: float = MAX_RATE
    decisions: list[Decision] = field(default_factory=list)
    _trials: list[Trial] = field(default_factory=list)
    _rate: float | None = None
    _hint: float | None = None
    _after_hint: bool = False
    _done_reason: str = ""

    def __post_init__(self) -> None:
        if not self.start > 0:
            raise ValueError(f"start rate {self.start!r}: must be > 0")
        if not 0 < self.precision < 1:
            raise ValueError(f"precision {self.precision!r}: must be between 0 and 1")
        if not self.growth > 1:
            raise ValueError(f"growth {self.growth!r}: must be > 1")
        if self.repeats < 1:
            raise ValueError(f"repeats {self.repeats!r}: must be >= 1")
        self._rate = min(self.start, self.max_rate)

    # -- the brackets ---------------------------------------------------------------------
    def bracket(self, *, clean: bool = False) -> tuple[float | None, float | None]:
        """(the highest rate proven, the lowest failing rate above it): within the SLA, or with
        *clean*, with no fault at all."""

        def ok(d: Decision) -> bool:
            return d.fault_free if clean else d.passed

        good = [d.rate for d in self.decisions if ok(d)]
        lo = max(good) if good else None
        bad = [d.rate for d in self.decisions if not ok(d) and d.rate > (lo or 0.0)]
        return lo, (min(bad) if bad else None)

    @property
    def lo(self) -> float | None:
        return self.bracket()[0]

    @property
    def hi(self) -> float | None:
        return self.bracket()[1]

    @property
    def done(self) -> bool:
        return self._rate is None

    def next(self) -> Probe | None:
        """The next step to run (None: the search is over)."""
        if self._rate is None:
            return None
        return Probe(self._rate, len(self._trials))

    def record(self, trial: Trial) -> None:
        """The outcome of the probe :meth:`next` gave."""
        if self._rate is None:
            raise RuntimeError("the search is over")
        self._trials.append(trial)
        votes = [t.passed for t in self._trials]
        n, yes = len(votes), sum(votes)
        # A failing start rate would end the search with nothing proven: it is judged by the
        # majority of at least START_TRIALS trials (a system just started, its queues cold,
        # can fail a first step it carries).
        start = not self.decisions
        limit = max(self.repeats, START_TRIALS) if start else self.repeats
        decided = yes > limit / 2 or n - yes >= limit / 2  # a tie fails
        doubt = any(t.borderline for t in self._trials) or 0 < yes < n or (start and yes < n)
        if n < limit and doubt and not decided:
            return  # another trial of the same rate
        clean = sum(t.fault_free for t in self._trials)
        passed = yes > n - yes
        phase = "bisect" if self.hi is not None else "grow"
        d = Decision(self._rate, passed, passed and clean > n - clean, tuple(self._trials), phase)
        self.decisions.append(d)
        self._trials = []
        if not passed:
            hints = [t.hint for t in d.trials if t.hint is not None]
            self._hint = min(hints) if hints else None
        self._rate = self._next_rate(d)

    def _next_rate(self, last: Decision) -> float | None:
        lo, hi = self.bracket()
        if hi is None:  # still growing
            if last.rate >= self.max_rate:
                self._done_reason = f"no step failed up to the highest rate, {self.max_rate:g}/s"
                return None
            return _round(min(last.rate * self.growth, self.max_rate))
        if lo is None:
            self._done_reason = "even the start rate failed"
            return None
        if (hi - lo) / hi > self.precision:
            return self._bisect(lo, hi, last)
        nlo, nhi = self.bracket(clean=True)  # then the no-fault rate, below it
        if nlo is not None and nhi is not None and (nhi - nlo) / nhi > self.precision:
            return _round((nlo + nhi) / 2)
        self._done_reason = f"within {self.precision:.0%}"
        return None

    def _bisect(self, lo: float, hi: float, last: Decision) -> float:
        hint, self._hint = self._hint, None
        after_hint, self._after_hint = self._after_hint, False
        if hint is not None:
            probe = hint * (1 - self.precision / 2)
            if lo * (1 + self.precision / 4) < probe < hi:
                self._after_hint = True
                return _round(probe)
        if after_hint and last.passed:
            probe = lo / (1 - self.precision) * 0.999
            if probe < hi:
                return _round(probe)
        return _round((lo + hi) / 2)

    def found(self) -> Found:
        """The answer so far: each rate and the first signal that failed above it."""
        lo, hi = self.bracket()
        nf = self.bracket(clean=True)[0]
        above = [d for d in self.decisions if not d.passed and d.rate > (lo or 0.0)]
        first = min(above, key=lambda d: d.rate) if above else None
        nf_above = [d for d in self.decisions if not d.fault_free and d.rate > (nf or 0.0)]
        nf_first = min(nf_above, key=lambda d: d.rate) if nf_above else None
        return Found(
            sustainable=lo,
            no_fault=nf,
            failed_by=first.failed[0] if first and first.failed else None,
            no_fault_failed_by=nf_first.faults[0] if nf_first and nf_first.faults else None,
            lowest_failing=hi,
            done=self.done,
            reason=self._done_reason,
        )


def _round(rate: float) -> float:
    """Rates to four significant digits (a step's rate is a setting, not a measurement)."""
    return float(f"{rate:.4g}")


def confirm_rates(rate: float) -> list[tuple[float, float]]:
    """The confirmation loads: (share, rate) at 80, 100 and 120 % of *rate*."""
    return [(share, _round(rate * share)) for share in CONFIRM]
