"""bench.core.schedule: planned send times, deterministic from the scenario and its seed."""

from __future__ import annotations

import itertools
import math
import statistics
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.config.scenario import LoadConfig
from bench.core import schedule
from bench.core.schedule import NS, expected_count, planned_offsets, split, total_duration


def cfg(**kw: Any) -> LoadConfig:
    return LoadConfig(**kw)


def plan(load: LoadConfig, seed: int = 1) -> list[int]:
    return list(planned_offsets(load, seed))


# -- constant ---------------------------------------------------------------------------------


def test_constant_exact_count_and_spacing() -> None:
    t = plan(cfg(rate=200, duration="20s"))
    assert len(t) == 4000
    assert t[0] == 0
    assert t[-1] == 20 * NS - 5_000_000
    assert all(b - a == 5_000_000 for a, b in itertools.pairwise(t))


def test_constant_non_integral_period() -> None:
    assert plan(cfg(rate=3, duration="1s")) == [0, 333_333_333, 666_666_667]


@given(st.integers(1, 5000), st.integers(1, 10))
def test_constant_integer_rate_count(rate: int, seconds: int) -> None:
    load = cfg(rate=rate, duration=f"{seconds}s")
    t = plan(load)
    assert len(t) == rate * seconds == expected_count(load)


@given(st.floats(0.05, 2000, allow_nan=False), st.integers(1, 20_000))
def test_constant_spacing_and_bounds(rate: float, duration_ms: int) -> None:
    period = NS / rate
    end = duration_ms * 1_000_000
    t = plan(cfg(rate=rate, duration=f"{duration_ms}ms"))
    assert t[0] == 0
    assert t[-1] < end
    assert t[-1] + period >= end - 1  # nothing left out before the end
    assert all(abs((b - a) - period) <= 1 for a, b in itertools.pairwise(t))
    assert all(abs(x - i * period) <= 0.5 for i, x in enumerate(t))  # no drift


def test_constant_ignores_seed() -> None:
    load = cfg(rate=50, duration="2s")
    assert plan(load, 1) == plan(load, 999)


@pytest.mark.parametrize(("rate", "duration"), [(2.5, "1s"), (1, "1200ms")])
def test_expected_count_exact_for_fractional_constant(rate: float, duration: str) -> None:
    load = cfg(rate=rate, duration=duration)
    assert expected_count(load) == len(plan(load))


# -- poisson ----------------------------------------------------------------------------------


def test_poisson_is_deterministic_per_seed() -> None:
    load = cfg(model="poisson", rate=500, duration="2s")
    assert plan(load, 42) == plan(load, 42)


def test_poisson_differs_across_seeds() -> None:
    load = cfg(model="poisson", rate=500, duration="2s")
    runs = [plan(load, seed) for seed in range(5)]
    assert len({tuple(r) for r in runs}) == 5


@given(st.integers(0, 2**32))
@settings(max_examples=30)
def test_poisson_bounds_and_order(seed: int) -> None:
    t = plan(cfg(model="poisson", rate=200, duration="1s"), seed)
    assert all(0 <= x < NS for x in t)
    assert t == sorted(t)


@pytest.mark.parametrize("seed", [1, 2, 3, 7, 11])
def test_poisson_mean_rate(seed: int) -> None:
    rate, seconds = 1000, 10
    t = plan(cfg(model="poisson", rate=rate, duration=f"{seconds}s"), seed)
    expected = rate * seconds
    # Poisson count: standard deviation sqrt(10000) = 100; allow five of them.
    assert abs(len(t) - expected) < 5 * math.sqrt(expected)
    gaps = [b - a for a, b in itertools.pairwise(t)]
    mean_gap = statistics.fmean(gaps)
    assert mean_gap == pytest.approx(NS / rate, rel=0.05)
    # Exponential gaps: the standard deviation equals the mean (a constant schedule has 0).
    assert statistics.stdev(gaps) == pytest.approx(mean_gap, rel=0.1)


def test_poisson_expected_count_is_the_mean() -> None:
    assert expected_count(cfg(model="poisson", rate=300, duration="5m")) == 90_000


# -- steps ------------------------------------------------------------------------------------


STEPS = cfg(
    model="steps",
    steps=[
        {"rate": 10, "duration": "1s"},
        {"rate": 100, "duration": "2s"},
        {"rate": 1, "duration": "3s"},
    ],
)


def test_steps_schedule() -> None:
    t = plan(STEPS)
    first = [i * 100_000_000 for i in range(10)]
    second = [NS + i * 10_000_000 for i in range(200)]
    third = [3 * NS + i * NS for i in range(3)]
    assert t == first + second + third
    assert expected_count(STEPS) == len(t) == 213
    assert total_duration(STEPS) == 6.0


def test_total_duration_of_open_models() -> None:
    assert total_duration(cfg(rate=5, duration="20s")) == 20.0
    assert total_duration(cfg(model="poisson", duration="5m")) == 300.0


# -- max_messages -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "load",
    [
        cfg(rate=100, duration="10s", max_messages=50),
        cfg(model="poisson", rate=100, duration="10s", max_messages=50),
        cfg(model="steps", steps=[{"rate": 100, "duration": "10s"}], max_messages=50),
    ],
    ids=["constant", "poisson", "steps"],
)
def test_max_messages_caps(load: LoadConfig) -> None:
    uncapped = plan(load.model_copy(update={"max_messages": None}))
    t = plan(load)
    assert len(t) == 50 == expected_count(load)
    assert t == uncapped[:50]


def test_max_messages_above_count_changes_nothing() -> None:
    load = cfg(rate=10, duration="1s", max_messages=1000)
    assert plan(load) == plan(cfg(rate=10, duration="1s"))
    assert expected_count(load) == 10


# -- closed -----------------------------------------------------------------------------------


def test_closed_has_no_schedule() -> None:
    load = cfg(model="closed", duration="5s")
    with pytest.raises(ValueError, match="closed"):
        planned_offsets(load, 1)
    assert expected_count(load) is None
    assert total_duration(load) == 5.0


# -- split ------------------------------------------------------------------------------------

loads = st.one_of(
    st.builds(
        lambda r, ms, cap: cfg(rate=r, duration=f"{ms}ms", max_messages=cap),
        st.integers(1, 500),
        st.integers(1, 3000),
        st.none() | st.integers(1, 400),
    ),
    st.builds(
        lambda r, ms: cfg(model="poisson", rate=r, duration=f"{ms}ms"),
        st.integers(1, 500),
        st.integers(1, 3000),
    ),
    st.builds(
        lambda a, b: cfg(
            model="steps", steps=[{"rate": a, "duration": "1s"}, {"rate": b, "duration": "500ms"}]
        ),
        st.integers(1, 200),
        st.integers(1, 200),
    ),
)


@given(loads, st.integers(1, 9), st.integers(0, 1000))
def test_split_partitions_the_schedule(load: LoadConfig, workers: int, seed: int) -> None:
    full = plan(load, seed)
    shares = [list(split(planned_offsets(load, seed), w, workers)) for w in range(workers)]
    # Each worker takes every N-th planned send, starting at its own index ...
    for w, share in enumerate(shares):
        assert share == full[w::workers]
    # ... so together they send the whole schedule, each send exactly once.
    assert sum(len(s) for s in shares) == len(full)
    assert sorted(x for s in shares for x in s) == sorted(full)
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_split_single_worker_is_everything() -> None:
    load = cfg(rate=7, duration="3s")
    assert list(split(planned_offsets(load, 1), 0, 1)) == plan(load)


def test_split_example() -> None:
    load = cfg(rate=10, duration="1s")
    ms = [x // 1_000_000 for x in split(planned_offsets(load, 1), 1, 3)]
    assert ms == [100, 400, 700]


@given(st.floats(min_value=0.01, max_value=0.99), st.integers(min_value=0, max_value=3000))
def test_lanes_partition_the_schedule(share: float, n: int) -> None:
    pairs = [(i, i * 10) for i in range(n)]
    send = list(schedule.lane(iter(pairs), "send", "both", share))
    recv = list(schedule.lane(iter(pairs), "receive", "both", share))
    assert sorted(send + recv) == pairs
    assert len(recv) == math.floor(n * share)


def test_single_direction_lanes() -> None:
    pairs = [(i, i) for i in range(5)]
    assert list(schedule.lane(iter(pairs), "send", "send", 0.5)) == pairs
    assert list(schedule.lane(iter(pairs), "receive", "send", 0.5)) == []
    assert list(schedule.lane(iter(pairs), "receive", "receive", 0.5)) == pairs
