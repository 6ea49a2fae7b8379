"""The backlog over a window: slope against noise, the rates, the late share."""

from __future__ import annotations

import random

from bench.core.backlog import Sample, growth_limit, late_share, measure


def queue(offered: float, service: float, seconds: float, step: float = 0.1) -> list[Sample]:
    """A queue fed at *offered* and served at most at *service* msgs/s, with jitter."""
    rng = random.Random(3)
    out, acc, dlv, t = [], 0.0, 0.0, 0.0
    while t <= seconds + 1e-9:
        out.append(Sample(round(t, 3), int(acc), int(dlv)))
        acc += offered * step
        dlv = min(acc - rng.uniform(0, offered * 0.05), dlv + service * step)
        t += step
    return out


def test_a_queue_that_keeps_up_has_a_flat_backlog() -> None:
    b = measure(queue(300, 400, 4), 1.0, 4.0)
    assert b is not None and b.points == 31
    assert abs(b.slope) < 5
    assert b.growth <= growth_limit(b, z=3, floor_share=0.02)
    assert abs(b.delivered_rate - 300) < 10 and abs(b.accepted_rate - 300) < 1


def test_an_overloaded_queue_grows_by_the_difference() -> None:
    b = measure(queue(400, 300, 4), 1.0, 4.0)
    assert b is not None
    assert 95 < b.slope < 105  # 400 offered - 300 served
    assert b.growth > growth_limit(b, z=3, floor_share=0.02)
    assert abs(b.delivered_rate - 300) < 5
    assert b.end > b.start


def test_too_few_samples_measure_nothing() -> None:
    s = [Sample(0, 0, 0), Sample(1, 10, 10), Sample(2, 20, 20)]
    assert measure(s, 0.5, 2.0) is None
    assert measure(s, 0.0, 2.0) is not None
    assert measure([Sample(1, 1, 1)] * 4, 0, 2) is None  # no span


def test_the_growth_limit_has_a_floor() -> None:
    b = measure([Sample(t, 100 * t, 100 * t) for t in range(5)], 0, 4)
    assert b is not None and b.noise == 0.0
    assert growth_limit(b, z=3, floor_share=0.02) == 0.02 * 100 * 4


def test_late_share() -> None:
    assert late_share(5, 100) == 0.05
    assert late_share(0, 0) == 0.0
