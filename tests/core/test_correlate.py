"""bench.core.correlate: joining generator records and post-office arrivals by message id."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.core.correlate import SPINE_METRICS, Correlator, Counts

RUN = "run-1"
MS = 1_000_000


def corr(late_after_ns: int = 10 * MS) -> Correlator:
    return Correlator(RUN, late_after_ns)


def send(c: Correlator, seq: int, planned: int = 0, start: int = 0) -> None:
    c.on_planned()
    c.on_sent(seq, planned, start)


def figures(c: Correlator, name: str) -> tuple[int, int, int]:
    m = c.metrics[name]
    return m.count, m.min_ns, m.max_ns


# -- joins ------------------------------------------------------------------------------------


def test_arrival_after_accept_joins() -> None:
    c = corr()
    send(c, 0, planned=0, start=2 * MS)
    c.on_accepted(0, 0, 2 * MS, 10 * MS)
    assert c.in_flight == 1
    c.on_arrival(RUN, 0, 15 * MS, 18 * MS)
    assert c.in_flight == 0
    assert figures(c, "send_delay") == (1, 5 * MS, 5 * MS)
    assert figures(c, "delivery_delay") == (1, 8 * MS, 8 * MS)
    counts = c.finish()
    assert (counts.delivered, counts.undelivered, counts.foreign) == (1, 0, 0)
    assert counts.identity_holds


def test_arrival_before_accept_joins() -> None:
    c = corr()
    send(c, 0)
    c.on_arrival(RUN, 0, 3 * MS, 4 * MS)  # the relay was faster than our read of the 250
    assert c.in_flight == 0 and c.counts.delivered == 0
    c.on_accepted(0, 0, 0, 5 * MS)
    assert c.counts.delivered == 1 and c.in_flight == 0
    assert figures(c, "send_delay") == (1, 0, 0)  # -2 ms, kept as 0 and counted
    assert c.metrics["send_delay"].negative == 1
    assert figures(c, "delivery_delay") == (1, 0, 0)
    counts = c.finish()
    assert (counts.delivered, counts.undelivered, counts.foreign) == (1, 0, 0)
    assert counts.identity_holds


def test_generator_side_metrics() -> None:
    c = corr(late_after_ns=5 * MS)
    send(c, 0, planned=100 * MS, start=103 * MS)
    c.on_accepted(0, 100 * MS, 103 * MS, 120 * MS)
    send(c, 1, planned=110 * MS, start=125 * MS)  # 15 ms late
    assert figures(c, "schedule_lag") == (2, 3 * MS, 15 * MS)
    assert figures(c, "submit_latency") == (1, 20 * MS, 20 * MS)
    assert figures(c, "service_time") == (1, 17 * MS, 17 * MS)
    assert c.counts.late == 1


def test_late_is_strictly_over_threshold() -> None:
    c = corr(late_after_ns=10)
    send(c, 0, planned=0, start=10)
    send(c, 1, planned=0, start=11)
    assert c.counts.late == 1


def test_spine_metrics_exist_from_the_start() -> None:
    c = corr()
    assert set(SPINE_METRICS) <= set(c.metrics)
    assert all(c.metrics[n].count == 0 for n in SPINE_METRICS)


# -- duplicates and foreign mail --------------------------------------------------------------


def test_duplicate_after_join() -> None:
    c = corr()
    send(c, 0)
    c.on_accepted(0, 0, 0, MS)
    c.on_arrival(RUN, 0, 2 * MS, 3 * MS)
    c.on_arrival(RUN, 0, 9 * MS, 9 * MS)
    assert (c.counts.delivered, c.counts.duplicate) == (1, 1)
    assert c.metrics["send_delay"].count == 1 and c.metrics["send_delay"].max_ns == MS


def test_duplicate_before_accept() -> None:
    c = corr()
    send(c, 0)
    c.on_arrival(RUN, 0, MS, MS)
    c.on_arrival(RUN, 0, MS, MS)
    c.on_accepted(0, 0, 0, MS)
    counts = c.finish()
    assert (counts.delivered, counts.duplicate, counts.foreign) == (1, 1, 0)


@pytest.mark.parametrize(("run", "seq"), [("other-run", 0), (RUN, -1), (RUN, 5), (RUN, 10**9)])
def test_foreign_arrivals(run: str, seq: int) -> None:
    c = corr()
    send(c, 0)
    c.on_accepted(0, 0, 0, MS)
    c.on_arrival(run, seq, MS, MS)
    assert c.counts.foreign == 1
    assert c.counts.delivered == 0 and c.in_flight == 1
    assert c.metrics["send_delay"].count == 0


def test_on_foreign() -> None:
    c = corr()
    c.on_foreign()
    c.on_foreign()
    assert c.finish().foreign == 2


def test_high_ids_grow_the_bitset() -> None:
    c = corr()
    for seq in (0, 7, 8, 8191, 8192, 100_000):
        send(c, seq)
        c.on_accepted(seq, 0, 0, MS)
        c.on_arrival(RUN, seq, 2 * MS, 2 * MS)
        c.on_arrival(RUN, seq, 2 * MS, 2 * MS)
    counts = c.finish()
    assert (counts.delivered, counts.duplicate, counts.undelivered) == (6, 6, 0)


# -- failures, rejections and the end of the run ---------------------------------------------


def test_finish_turns_awaited_into_undelivered() -> None:
    c = corr()
    for seq in range(3):
        send(c, seq)
        c.on_accepted(seq, 0, 0, MS)
    c.on_arrival(RUN, 1, 2 * MS, 2 * MS)
    counts = c.finish()
    assert (counts.accepted, counts.delivered, counts.undelivered) == (3, 1, 2)
    assert c.in_flight == 0 and counts.identity_holds
    again = c.finish()  # closing twice changes nothing
    assert again.undelivered == 2 and c.finished


def test_rejected_and_failed_outcomes() -> None:
    c = corr()
    for seq, (stage, code) in enumerate([("rcpt", 550), ("rcpt", 550), ("data", 452)]):
        send(c, seq)
        c.on_rejected(seq, stage, code)
    send(c, 3)
    c.on_failed(3, "connect", "refused")
    c.on_planned()
    c.on_not_sent()
    counts = c.finish()
    assert (counts.planned, counts.sent, counts.rejected, counts.failed) == (5, 4, 3, 1)
    assert counts.not_sent == 1 and counts.identity_holds
    assert c.outcomes.as_dict() == {
        "rejected": [
            {"stage": "rcpt", "code": 550, "class": "5xx", "count": 2},
            {"stage": "data", "code": 452, "class": "4xx", "count": 1},
        ],
        "failed": [{"stage": "connect", "error": "refused", "class": "connection", "count": 1}],
        "by_class": {"4xx": 1, "5xx": 2, "connection": 1},
    }


@pytest.mark.parametrize("how", ["failed", "rejected"])
def test_failed_then_delivered(how: str) -> None:
    c = corr()
    send(c, 0)
    c.on_arrival(RUN, 0, MS, MS)  # the system took it; we never read its 250
    if how == "failed":
        c.on_failed(0, "dot", "timeout")
    else:
        c.on_rejected(0, "dot", 451)
    counts = c.finish()
    assert counts.failed_then_delivered == 1
    assert (counts.delivered, counts.foreign, counts.undelivered) == (0, 0, 0)
    assert counts.identity_holds


def test_failed_then_delivered_when_arrival_comes_after_failure() -> None:
    c = corr()
    send(c, 0)
    c.on_failed(0, "dot", "timeout")  # we gave up waiting for the 250 ...
    c.on_arrival(RUN, 0, MS, MS)  # ... and the relay delivered it anyway
    counts = c.finish()
    assert (counts.failed_then_delivered, counts.foreign) == (1, 0)


def test_early_arrival_never_reported_is_foreign_at_finish() -> None:
    c = corr()
    send(c, 0)
    c.on_arrival(RUN, 0, MS, MS)
    counts = c.finish()
    assert (counts.foreign, counts.delivered, counts.failed_then_delivered) == (1, 0, 0)


def test_counts_as_dict_and_identity() -> None:
    counts = Counts(planned=5, not_sent=1, sent=4, accepted=2, rejected=1, failed=1, delivered=1)
    counts.undelivered = 1
    assert counts.identity_holds
    assert set(counts.as_dict()) >= {"planned", "sent", "delivered", "undelivered", "foreign"}
    assert counts.as_dict()["planned"] == 5
    counts.delivered = 2
    assert not counts.identity_holds


# -- any interleaving -------------------------------------------------------------------------

FATES = ["not_sent", "rejected", "failed", "lost", "delivered", "dup", "ftd", "failed_late"]


def script(fate: str, seq: int) -> list[tuple[str, int]]:
    sent, acc, arr, fail = ("sent", seq), ("accepted", seq), ("arrival", seq), ("failed", seq)
    return {
        "not_sent": [("not_sent", seq)],
        "rejected": [sent, ("rejected", seq)],
        "failed": [sent, fail],
        "lost": [sent, acc],
        "delivered": [sent, acc],  # + one arrival anywhere after the send
        "dup": [sent, acc],  # + two arrivals anywhere after the send
        "ftd": [sent, arr, fail],
        "failed_late": [sent, fail, arr],
    }[fate]


@given(st.lists(st.sampled_from(FATES), max_size=40), st.integers(0, 5), st.data())
def test_accounting_identity_for_any_interleaving(
    fates: list[str], n_foreign: int, data: st.DataObject
) -> None:
    queues: list[list[tuple[str, int]]] = [script(f, seq) for seq, f in enumerate(fates)]
    # Arrivals of delivered mail may land before or after the accept is read.
    for seq, f in enumerate(fates):
        q = queues[seq]
        for _ in range({"delivered": 1, "dup": 2}.get(f, 0)):
            q.insert(data.draw(st.integers(1, len(q)), label="arrival slot"), ("arrival", seq))
    queues += [[("foreign", -1)] for _ in range(n_foreign)]

    c = corr()
    c.on_planned(len(fates))
    t = 0
    while any(queues):
        live = [q for q in queues if q]
        q = live[data.draw(st.integers(0, len(live) - 1), label="next")]
        event, seq = q.pop(0)
        t += MS
        if event == "not_sent":
            c.on_not_sent()
        elif event == "sent":
            c.on_sent(seq, t - MS, t)
        elif event == "accepted":
            c.on_accepted(seq, 0, 0, t)
        elif event == "rejected":
            c.on_rejected(seq, "rcpt", 550)
        elif event == "failed":
            c.on_failed(seq, "dot", "timeout")
        elif event == "arrival":
            c.on_arrival(RUN, seq, t, t + 1)
        else:
            c.on_arrival("stranger", 0, t, t)
    n = Counter(fates)
    assert c.in_flight == n["lost"]
    counts = c.finish()

    assert counts.identity_holds
    assert counts.planned == len(fates)
    assert counts.not_sent == n["not_sent"]
    assert counts.sent == len(fates) - n["not_sent"]
    assert counts.rejected == n["rejected"]
    assert counts.failed == n["failed"] + n["ftd"] + n["failed_late"]
    assert counts.accepted == n["lost"] + n["delivered"] + n["dup"]
    assert counts.delivered == n["delivered"] + n["dup"]
    assert counts.undelivered == n["lost"]
    assert counts.duplicate == n["dup"]
    assert counts.failed_then_delivered >= n["ftd"]
    assert counts.foreign + counts.failed_then_delivered == (
        n_foreign + n["ftd"] + n["failed_late"]
    )
    assert c.metrics["send_delay"].count == counts.delivered
    assert c.metrics["delivery_delay"].count == counts.delivered
    assert c.metrics["submit_latency"].count == counts.accepted
    assert c.metrics["schedule_lag"].count == counts.sent
    assert c.in_flight == 0
