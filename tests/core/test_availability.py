"""Fault windows, rates, month projections and outages from message fates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.core.availability import (
    BUDGET_MIN,
    CONNECTION,
    NS,
    OK,
    REPLY,
    Availability,
    failure_kind,
)

S = NS  # one second in ns


def test_a_window_is_a_fault_above_ten_percent_of_active_users() -> None:
    a = Availability(0, window_s=60)
    for u in range(100):  # window 0: 10 of 100 users hit — not more than 10 %: no fault
        a.record(u * S // 10, [u], REPLY if u < 10 else OK)
    for u in range(100):  # window 1: 11 of 100 hit by connection failures — a fault
        a.record(60 * S + u * S // 10, [u], CONNECTION if u < 11 else OK)
    s = a.summary()
    assert [w["fault"] for w in s["by_window"]] == [False, True]
    assert [w["connectivity_fault"] for w in s["by_window"]] == [False, True]
    assert s["no_fault_rate"] == s["connectivity_rate"] == 0.5
    assert s["month"]["fault_min"] == pytest.approx(0.5 * 30 * 24 * 60)
    assert s["month"]["fault_budget_share"] == pytest.approx(0.5 * 43200 / BUDGET_MIN)


def test_reply_failures_are_faults_but_not_connectivity_faults() -> None:
    a = Availability(0, window_s=60)
    for u in range(10):
        a.record(u * S, [u], REPLY)
    s = a.summary()
    assert s["fault_windows"] == 1 and s["connectivity_fault_windows"] == 0
    assert s["connectivity_rate"] == 1.0
    assert s["outages"][0]["kind"] == "reply"


def test_users_count_once_per_window() -> None:
    a = Availability(0, window_s=60)
    for i in range(50):  # user 0 fails 50 times; users 1..9 are fine: 1 of 10 hit
        a.record(i * S, [0], CONNECTION)
    for u in range(1, 10):
        a.record(u * S, [u], OK)
    (w,) = a.summary()["by_window"]
    assert (w["active_users"], w["affected_users"], w["fault"]) == (10, 1, False)


def test_outages_are_runs_of_failing_seconds() -> None:
    a = Availability(0)
    for sec in range(20):
        for i in range(10):
            bad = 5 <= sec < 8 or sec == 12
            a.record(sec * S + i * S // 10, [i], CONNECTION if bad else OK)
    outages = a.summary()["outages"]
    assert [(o["begin_s"], o["end_s"], o["kind"]) for o in outages] == [
        (5.0, 8.0, "connection"),
        (12.0, 13.0, "connection"),
    ]
    assert outages[0]["attempts"] == 30 and outages[0]["failed"] == 30


def test_no_traffic_means_no_data() -> None:
    s = Availability(0).summary(lost=3)
    assert s["no_fault_rate"] is None and s["windows"] == 0
    assert s["accepted_then_lost"] == 3


def test_failure_kinds() -> None:
    assert failure_kind("accepted") == OK
    assert failure_kind("rejected") == REPLY
    assert failure_kind("failed") == CONNECTION


def test_a_filters_verdict_on_labelled_mail_is_no_fault() -> None:
    # a 5xx to the end of DATA of labelled mail is the filter's verdict (judged by filters)
    assert failure_kind("rejected", "dot", 554, labelled=True) == OK
    # ... but not without labels, not a 4xx, not at another stage
    assert failure_kind("rejected", "dot", 554) == REPLY
    assert failure_kind("rejected", "dot", 451, labelled=True) == REPLY
    assert failure_kind("rejected", "rcpt", 550, labelled=True) == REPLY
    assert failure_kind("failed", "dot", 0, labelled=True) == CONNECTION


records = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=300 * S),
        st.lists(st.integers(min_value=0, max_value=30), min_size=1, max_size=3),
        st.sampled_from([OK, REPLY, CONNECTION]),
    ),
    max_size=200,
)


@given(records, st.integers(min_value=1, max_value=4))
def test_merged_workers_equal_one_recorder(recs: list[tuple[int, list[int], str]], n: int) -> None:
    whole = Availability(0, window_s=30)
    parts = [Availability(0, window_s=30) for _ in range(n)]
    for i, (t, users, kind) in enumerate(recs):
        whole.record(t, users, kind)
        parts[i % n].record(t, users, kind)
    merged = Availability(0, window_s=30)
    for p in parts:
        merged.merge(p)
    assert merged.summary() == whole.summary()
