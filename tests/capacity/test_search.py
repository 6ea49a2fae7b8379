"""The capacity search against synthetic systems: a true capacity, noise near it, hints."""

from __future__ import annotations

import random

import pytest

from bench.capacity.search import Probe, Search, Trial, confirm_rates


def system(
    capacity: float, *, hint: bool = True, sla_at: float | None = None, noise: float = 0.0
) -> object:
    """A model mail system: overloaded above *capacity* (the backlog grows; an overloaded
    step delivers at *capacity*), the SLA's latency check fails above *sla_at*, and within
    *noise* (a share) of the capacity a coin decides and the trial says it is borderline."""
    rng = random.Random(7)

    def trial(p: Probe) -> Trial:
        r = p.rate
        near = noise and abs(r - capacity) / capacity < noise
        over = rng.random() < 0.5 if near else r > capacity
        failed: list[str] = []
        if over:
            failed.append("backlog_growth")
        if sla_at is not None and r > sla_at:
            failed.append("send_delay.p99")
        faults = ("undelivered",) if over else ()
        return Trial(
            r,
            passed=not failed,
            fault_free=not failed and not faults,
            failed=tuple(failed),
            faults=faults,
            borderline=bool(near),
            hint=capacity if over and hint else None,
        )

    return trial


def run(search: Search, trial: object, limit: int = 60) -> list[Probe]:
    probes = []
    while (p := search.next()) is not None:
        probes.append(p)
        search.record(trial(p))  # type: ignore[operator]
        assert len(probes) < limit, "the search does not end"
    return probes


@pytest.mark.parametrize("capacity", [300.0, 1500.0, 47.0, 9000.0])
@pytest.mark.parametrize("hint", [True, False])
def test_finds_the_capacity_within_the_precision(capacity: float, hint: bool) -> None:
    s = Search(start=10.0, precision=0.05)
    probes = run(s, system(capacity, hint=hint))
    f = s.found()
    assert f.done and f.sustainable is not None and f.lowest_failing is not None
    assert f.sustainable <= capacity < f.lowest_failing
    assert (f.lowest_failing - f.sustainable) / f.lowest_failing <= 0.05
    assert f.failed_by == "backlog_growth"
    rates = [p.rate for p in probes]
    assert rates[:3] == [10.0, 20.0, 40.0]  # geometric growth first


def test_a_hint_shortens_the_bisection() -> None:
    with_hint, without = Search(start=100.0), Search(start=100.0)
    n_hint = len(run(with_hint, system(300.0)))
    n_plain = len(run(without, system(300.0, hint=False)))
    assert n_hint < n_plain
    assert n_hint <= 5  # 100, 200, 400 (fails, delivers 300), 292.5, 307


def test_the_start_rate_failing_proves_nothing() -> None:
    s = Search(start=500.0)
    probes = run(s, system(300.0))
    f = s.found()
    assert [p.rate for p in probes] == [500.0, 500.0]  # never judged on one trial
    assert f.sustainable is None and f.no_fault is None and f.done
    assert f.reason == "even the start rate failed"
    assert f.failed_by == "backlog_growth"


def test_a_start_rate_failing_once_cold_is_tried_again() -> None:
    """A system just started fails its first step, then carries the same rate: the start rate
    is judged by the majority of its trials and the search goes on."""
    cold = [True]

    def trial(p: Probe) -> Trial:
        ok = p.rate <= 300 and not cold.pop() if cold else p.rate <= 300
        return Trial(p.rate, ok, ok, () if ok else ("late_sends",))

    s = Search(start=50.0, repeats=1)  # even when other steps are trusted on one trial
    probes = run(s, trial)
    assert [p.rate for p in probes][:4] == [50.0, 50.0, 50.0, 100.0]  # fail, pass, pass
    f = s.found()
    assert f.sustainable is not None and 285 <= f.sustainable <= 300


def test_two_rates_and_what_failed_above_each() -> None:
    """Faults (lost mail) begin above 300; the SLA's latency check only above 400: the
    no-fault rate is the first, the sustainable rate the second."""

    def trial(p: Probe) -> Trial:
        faults = ("undelivered",) if p.rate > 300 else ()
        failed = ("send_delay.p99",) if p.rate > 400 else ()
        return Trial(p.rate, not failed, not failed and not faults, failed, faults)

    s = Search(start=100.0, precision=0.02)
    run(s, trial)
    f = s.found()
    assert f.sustainable is not None and 392 <= f.sustainable <= 400
    assert f.no_fault is not None and 294 <= f.no_fault <= 300
    assert f.failed_by == "send_delay.p99"
    assert f.no_fault_failed_by == "undelivered"


def test_a_borderline_rate_is_repeated_and_judged_by_majority() -> None:
    s = Search(start=290.0, repeats=3)
    outcomes = iter([True, False, False])  # passes once, then fails twice: it fails

    def trial(p: Probe) -> Trial:
        ok = next(outcomes) if p.rate == 290.0 else p.rate < 290.0
        return Trial(p.rate, ok, ok, () if ok else ("backlog_growth",), borderline=True)

    first = s.next()
    assert first == Probe(290.0, 0)
    s.record(trial(first))
    assert s.next() == Probe(290.0, 1)  # the same rate again, the next seed
    s.record(trial(Probe(290.0, 1)))
    assert s.next() == Probe(290.0, 2)  # split: the third decides
    s.record(trial(Probe(290.0, 2)))
    assert s.decisions[0].passed is False and len(s.decisions[0].trials) == 3
    assert s.done  # the start rate failed


def test_two_agreeing_borderline_trials_decide() -> None:
    s = Search(start=100.0, repeats=3)
    for i in range(2):
        p = s.next()
        assert p == Probe(100.0, i)
        s.record(Trial(100.0, True, True, borderline=True))
    assert s.decisions[0].passed and s.next() == Probe(200.0, 0)


def test_noise_near_the_capacity_still_ends_near_it() -> None:
    s = Search(start=50.0, precision=0.05, repeats=3)
    run(s, system(600.0, noise=0.03))
    f = s.found()
    assert f.sustainable is not None
    assert abs(f.sustainable - 600.0) / 600.0 <= 0.08


def test_the_highest_rate_caps_the_growth() -> None:
    s = Search(start=100.0, max_rate=350.0)
    probes = run(s, system(1e9))
    assert [p.rate for p in probes] == [100.0, 200.0, 350.0]
    assert s.found().sustainable == 350.0 and "no step failed" in s.found().reason


def test_bad_settings_are_refused() -> None:
    for kw in ({"start": 0.0}, {"start": 1.0, "precision": 0.0}, {"start": 1.0, "growth": 1.0}):
        with pytest.raises(ValueError):
            Search(**kw)  # type: ignore[arg-type]


def test_confirm_rates() -> None:
    assert confirm_rates(300.0) == [(0.8, 240.0), (1.0, 300.0), (1.2, 360.0)]
