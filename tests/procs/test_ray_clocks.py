"""The clock judgement shared by generator and post office actors on Ray: a node on another
host whose clock agrees too loosely is refused at the start, one that agrees loosely is named
in the warnings, and a node on the driver's own host (one CLOCK_MONOTONIC) is never judged.
Pure: the offsets are what :func:`bench.procs.ray_clocks.measure` would have returned."""

from __future__ import annotations

from bench.core.clock_offset import MS, REFUSE_NS, WARN_NS, Offset
from bench.procs.ray_clocks import Node, NodeClock, refusal, warnings

TIGHT = Offset(offset_ns=3 * MS, uncertainty_ns=MS // 4, rtt_ns=MS // 2, probes=16)
LOOSE = Offset(offset_ns=0, uncertainty_ns=WARN_NS + MS, rtt_ns=2 * WARN_NS, probes=16)
FAR = Offset(offset_ns=0, uncertainty_ns=REFUSE_NS + MS, rtt_ns=2 * REFUSE_NS, probes=16)


def node(ip: str) -> Node:
    return Node(node_id=f"{ip.replace('.', '')}ffffffffffff", ip=ip, cpus=2)


def test_a_far_clock_on_another_host_is_refused_naming_node_and_role() -> None:
    clocks = [NodeClock(node("10.0.0.1"), False, TIGHT), NodeClock(node("10.0.0.2"), False, FAR)]
    why = refusal(clocks, "post office") or ""
    assert "node 10.0.0.2" in why and "post office actors" in why and "1001.0 ms" in why
    assert refusal(clocks[:1], "post office") is None


def test_the_drivers_own_host_and_an_unmeasured_node_are_not_judged() -> None:
    same = NodeClock(node("127.0.0.1"), True, FAR, FAR)
    unmeasured = NodeClock(node("10.0.0.3"), False)
    assert refusal([same, unmeasured], "generator") is None
    assert warnings([same, unmeasured], "generator") == []


def test_a_loose_clock_or_one_that_drifted_by_the_end_is_warned_about() -> None:
    loose = NodeClock(node("10.0.0.4"), False, LOOSE)
    drifted = NodeClock(node("10.0.0.5"), False, TIGHT, Offset(3 * MS + WARN_NS, 0, MS, 16))
    steady = NodeClock(node("10.0.0.6"), False, TIGHT, TIGHT)
    out = warnings([loose, drifted, steady], "post office")
    assert len(out) == 2
    assert "node 10.0.0.4" in out[0] and "node 10.0.0.5" in out[1]
    assert all(w.endswith("(post office actors)") for w in out)
    assert refusal([loose, drifted, steady], "post office") is None
