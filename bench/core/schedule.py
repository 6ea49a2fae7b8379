"""Planned send times, fixed ahead of time from the scenario and its seed. Pure.

An open-loop schedule is a lazy, deterministic sequence of offsets in nanoseconds from the
run's start: the same scenario and seed always give the same times, and nothing is held per
message. Latency is measured from these planned times, not from when a send happened to start.
A worker of N takes every N-th planned send (:func:`split`).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator
from typing import TypeVar

from bench.config.scenario import LoadConfig

NS = 1_000_000_000
T = TypeVar("T")


def _constant(rate: float, start_ns: int, end_ns: int) -> Iterator[int]:
    period = NS / rate
    for i in itertools.count():
        t = start_ns + round(i * period)
        if t >= end_ns:
            return
        yield t


def _poisson(rate: float, start_ns: int, end_ns: int, rng: random.Random) -> Iterator[int]:
    t = float(start_ns)
    while True:
        t += rng.expovariate(rate) * NS
        if t >= end_ns:
            return
        yield round(t)


def _constant_count(rate: float, end_ns: int) -> int:
    """How many i >= 0 have round(i * NS / rate) < end_ns (what :func:`_constant` yields)."""
    period = NS / rate
    n = max(math.ceil(end_ns / period) - 1, 0)
    while n > 0 and round((n - 1) * period) >= end_ns:
        n -= 1
    while round(n * period) < end_ns:
        n += 1
    return n


def planned_offsets(load: LoadConfig, seed: int) -> Iterator[int]:
    """Offsets (ns from the start) of every planned send of an open-loop model."""
    rng = random.Random(seed)
    if load.model == "closed":
        raise ValueError("the closed model has no planned schedule")
    if load.model == "steps":
        parts: list[Iterator[int]] = []
        start = 0
        for step in load.steps:
            end = start + round(step.duration * NS)
            parts.append(_constant(step.rate, start, end))
            start = end
        times: Iterator[int] = itertools.chain.from_iterable(parts)
    elif load.model == "poisson":
        times = _poisson(load.rate, 0, round(load.duration * NS), rng)
    else:
        times = _constant(load.rate, 0, round(load.duration * NS))
    if load.max_messages is not None:
        times = itertools.islice(times, load.max_messages)
    return times


def total_duration(load: LoadConfig) -> float:
    """How long the sending phase lasts, in seconds."""
    if load.model == "steps":
        return sum(s.duration for s in load.steps)
    return load.duration


def expected_count(load: LoadConfig) -> int | None:
    """How many sends the schedule plans (exactly for constant/steps; the mean for poisson)."""
    if load.model == "closed":
        return None
    if load.model == "steps":
        n = sum(_constant_count(s.rate, round(s.duration * NS)) for s in load.steps)
    elif load.model == "constant":
        n = _constant_count(load.rate, round(load.duration * NS))
    else:
        n = round(load.rate * load.duration)
    return min(n, load.max_messages) if load.max_messages else n


def split(planned: Iterator[T], worker: int, workers: int) -> Iterator[T]:
    """The share of *planned* that worker *worker* (0-based) of *workers* sends."""
    return itertools.islice(planned, worker, None, workers)


def is_inbound(seq: int, share: float) -> bool:
    """Whether message *seq* goes the inbound way when a share *share* of the traffic does.

    Exactly ``floor(n * share)`` of the first n messages are inbound, spread evenly.
    """
    return math.floor((seq + 1) * share) > math.floor(seq * share)


def lane(
    planned: Iterator[tuple[int, T]], direction: str, mix: str, share: float
) -> Iterator[tuple[int, T]]:
    """The (seq, item) pairs of *planned* that belong to *direction* ("send" or "receive")
    when the scenario's direction is *mix* ("send", "receive" or "both")."""
    if mix != "both":
        return planned if mix == direction else iter(())
    inbound = direction == "receive"
    return ((seq, x) for seq, x in planned if is_inbound(seq, share) == inbound)
