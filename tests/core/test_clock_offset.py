"""A node's clock against the driver's from round trips: the best one kept, the correction,
its uncertainty, drift between start and end, and the bound that warns or refuses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.core.clock_offset import MS, REFUSE_NS, WARN_NS, Agreement, Offset, Probe, estimate


def probe(sent: int, rtt: int, true_offset: int, at: float = 0.5) -> Probe:
    """A round trip of *rtt* ns whose answer was read *at* (0..1) of the way through it, by
    a node whose clock is *true_offset* ahead."""
    return Probe(sent, sent + round(rtt * at) + true_offset, sent + rtt)


def test_the_shortest_round_trip_wins() -> None:
    off = 7 * MS
    probes = [
        probe(1_000, 9 * MS, off, at=0.9),  # queued on the way back: a poor estimate
        probe(50 * MS, 200_000, off),  # the best: 0.2 ms round trip
        probe(90 * MS, 3 * MS, off, at=0.1),
    ]
    o = estimate(probes)
    assert o.rtt_ns == 200_000 and o.probes == 3
    assert o.offset_ns == off
    assert o.uncertainty_ns == 100_000  # half the round trip


@given(
    true_offset=st.integers(-(10**15), 10**15),
    rtts=st.lists(st.integers(0, 50 * MS), min_size=1, max_size=20),
    at=st.floats(0, 1),
)
def test_the_true_offset_is_within_the_uncertainty(
    true_offset: int, rtts: list[int], at: float
) -> None:
    probes = [probe(i * 100 * MS, rtt, true_offset, at) for i, rtt in enumerate(rtts)]
    o = estimate(probes)
    assert abs(o.offset_ns - true_offset) <= o.uncertainty_ns
    assert o.uncertainty_ns * 2 >= min(rtts)


def test_correction_round_trips() -> None:
    o = Offset(offset_ns=-5_000, uncertainty_ns=10, rtt_ns=20, probes=1)
    assert o.to_driver(1_000_000) == 1_005_000  # the node is behind: add
    assert o.to_node(o.to_driver(123_456)) == 123_456


def test_no_round_trip_or_time_going_back_is_refused() -> None:
    with pytest.raises(ValueError, match="no round trips"):
        estimate([])
    with pytest.raises(ValueError, match="monotonic"):
        estimate([Probe(sent=10, node=5, back=9)])


def test_drift_adds_to_the_uncertainty_and_sets_the_verdict() -> None:
    start = Offset(offset_ns=100 * MS, uncertainty_ns=MS // 2, rtt_ns=MS, probes=16)
    steady = Agreement(start, Offset(100 * MS, MS // 4, MS // 2, 16))
    assert steady.drift_ns == 0 and steady.uncertainty_ns == MS // 2
    assert steady.verdict() == "ok" and steady.warning("n1") is None
    drifting = Agreement(start, Offset(100 * MS + WARN_NS, MS // 2, MS, 16))
    assert drifting.drift_ns == WARN_NS
    assert drifting.uncertainty_ns == WARN_NS + MS // 2
    assert drifting.verdict() == "warn"
    warning = drifting.warning("n1") or ""
    assert "node n1" in warning and "5.500 ms" in warning
    far = Agreement(Offset(0, REFUSE_NS + 1, 2 * REFUSE_NS, 1))
    assert far.verdict() == "refuse"
    doc = drifting.as_dict()
    assert doc["offset_ms"] == 100 and doc["drift_ms"] == WARN_NS / MS
    assert doc["verdict"] == "warn" and doc["probes"] == 16
    assert "drift_ms" not in Agreement(start).as_dict()  # no end measured (its node died)
