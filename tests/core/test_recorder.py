"""A generator split over worker processes must give the same books as one generator."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from bench.core.books import GenRecorder, unpack
from bench.core.correlate import Correlator

RUN = "r"
# one message: (fate, lag_us, service_us, delay_us, arrives_first)
MSG = st.tuples(
    st.sampled_from(["accepted", "rejected", "failed", "lost"]),
    st.integers(0, 50_000),
    st.integers(1, 50_000),
    st.integers(0, 5_000_000),
    st.booleans(),
)


def replay_local(msgs: list[tuple[str, int, int, int, bool]]) -> Correlator:
    c = Correlator(RUN, 10_000_000)
    for seq, (fate, lag, service, delay, first) in enumerate(msgs):
        planned, start = seq * 1000, seq * 1000 + lag * 1000
        end = start + service * 1000
        c.on_planned()
        c.on_sent(seq, planned, start)
        if fate == "rejected":
            c.on_rejected(seq, "rcpt", 550)
        elif fate == "failed":
            c.on_failed(seq, "dot", "timeout")
        else:
            if first and fate == "accepted":
                c.on_arrival(RUN, seq, end + delay * 1000, end + delay * 1000 + 5)
            c.on_accepted(seq, planned, start, end)
            if not first and fate == "accepted":
                c.on_arrival(RUN, seq, end + delay * 1000, end + delay * 1000 + 5)
    c.finish()
    return c


def replay_split(msgs: list[tuple[str, int, int, int, bool]], workers: int) -> Correlator:
    parent = Correlator(RUN, 10_000_000)
    parent.remote = True
    recs = [GenRecorder(10_000_000) for _ in range(workers)]
    arrivals = []
    for seq, (fate, lag, service, delay, first) in enumerate(msgs):
        r = recs[seq % workers]
        planned, start = seq * 1000, seq * 1000 + lag * 1000
        end = start + service * 1000
        r.on_planned()
        r.on_sent(seq, planned, start)
        if fate == "rejected":
            r.on_rejected(seq, "rcpt", 550)
        elif fate == "failed":
            r.on_failed(seq, "dot", "timeout")
        else:
            r.on_accepted(seq, planned, start, end)
            if fate == "accepted":
                arrivals.append((first, seq, end + delay * 1000))
    # arrivals that came "first" reach the parent before the workers' batches
    for first, seq, t in arrivals:
        if first:
            parent.on_arrival(RUN, seq, t, t + 5)
    for r in recs:
        acc_ids, acc_ns, unacc = pickle.loads(pickle.dumps(r.take_batch()))
        for seq, ns in zip(unpack(acc_ids), unpack(acc_ns), strict=True):
            parent.on_remote_accepted(seq, ns)
        for seq in unpack(unacc):
            parent.on_remote_unaccepted(seq)
    for first, seq, t in arrivals:
        if not first:
            parent.on_arrival(RUN, seq, t, t + 5)
    for r in recs:
        parent.absorb(pickle.loads(pickle.dumps(r.final())))
    parent.finish()
    return parent


@settings(max_examples=60, deadline=None)
@given(st.lists(MSG, max_size=80), st.integers(1, 4))
def test_split_books_equal_local_books(
    msgs: list[tuple[str, int, int, int, bool]], workers: int
) -> None:
    local, split = replay_local(msgs), replay_split(msgs, workers)
    assert split.counts == local.counts
    assert split.counts.identity_holds
    assert split.outcomes == local.outcomes
    for name, m in local.metrics.items():
        other = split.metrics[name]
        assert (other.count, other.sum_ns, other.min_ns, other.max_ns) == (
            m.count,
            m.sum_ns,
            m.min_ns,
            m.max_ns,
        ), name
        assert other.summary() == m.summary(), name


def test_take_batch_forgets_what_it_gave() -> None:
    r = GenRecorder(0)
    r.on_sent(1, 0, 1)
    r.on_accepted(1, 0, 1, 9)
    r.on_failed(2, "mail", "reset")
    ids, ns, unacc = r.take_batch()
    assert list(unpack(ids)) == [1] and list(unpack(ns)) == [9] and list(unpack(unacc)) == [2]
    assert all(len(b) == 0 for b in r.take_batch())
