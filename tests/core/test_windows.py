"""Window thresholds (``send_delay.p99[1m] < 500ms``), threshold tables with abort_on_fail, and
their evaluation over synthetic windows. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from bench.config.scenario import ScenarioError, from_dict
from bench.config.thresholds import Threshold, ThresholdError, parse_threshold
from bench.core.hdr import new_histogram
from bench.run.intervallog import HistStats, Interval, last_window, windows
from bench.verdict.abort import AbortGate, Trip, mark_aborted
from bench.verdict.sla import Check, StatSource, check_windows, evaluate


class Fixed:
    """A StatSource with given statistics."""

    def __init__(self, **stats: float | None) -> None:
        self.stats = stats

    def stat(self, name: str) -> float | None:
        return self.stats.get(name)


def win(*p99s: float | None, width: float = 60.0) -> list[tuple[float, Mapping[str, StatSource]]]:
    return [(i * width, {"send_delay": Fixed(p99=v)}) for i, v in enumerate(p99s)]


# -- the grammar ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "window_s", "name"),
    [
        ("send_delay.p99[1m] < 500ms", 60.0, "send_delay.p99[1m]"),
        ("submit_latency.p99.9[10s] <= 1s", 10.0, "submit_latency.p99.9[10s]"),
        ("send_delay.count[30s] >= 100", 30.0, "send_delay.count[30s]"),
        ("stage.mail.max[ 2s ] < 1s", 2.0, "stage.mail.max[2s]"),
        ("send_delay.p99 < 500ms", None, "send_delay.p99"),
    ],
)
def test_window_thresholds_parse(text: str, window_s: float | None, name: str) -> None:
    t = parse_threshold(text)
    assert t.window_s == window_s and t.name == name and t.text == text.strip()
    assert not t.abort_on_fail and t.grace_s == 0


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("send_delay.p99[0s] < 1s", "must be longer than 0"),
        ("send_delay.p99[soon] < 1s", "'soon'"),
        ("send_delay.p99[] < 1s", "window"),
        ("send_delay.p99[1m < 1s", "metric.stat[window] OP value"),
        ("send_delay[1m].p99 < 1s", "is not a threshold"),
        ("send_delay.p99[1m] < soon", "'soon'"),
    ],
)
def test_bad_window_thresholds_quote_the_input(text: str, says: str) -> None:
    with pytest.raises(ThresholdError) as err:
        parse_threshold(text)
    assert repr(text) in str(err.value) and says in str(err.value)


# -- scenario: tables, results, checks against the interval -------------------------------
def sla(*thresholds: Any, **extra: Any) -> dict[str, Any]:
    return {"name": "x", "sla": {"thresholds": list(thresholds)}, **extra}


def problem(data: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ScenarioError) as err:
        from_dict(data, "f")
    assert len(err.value.problems) == 1, err.value.problems
    return err.value.problems[0]


def test_threshold_tables_and_strings_mix() -> None:
    table = {"threshold": "submit_latency.p99[10s] < 1s", "abort_on_fail": True, "grace": "30s"}
    s = from_dict(sla("send_delay.p99 < 500ms", table), "f")
    plain, gated = s.sla.thresholds
    assert isinstance(plain, Threshold) and not plain.abort_on_fail
    assert gated.abort_on_fail and gated.grace_s == 30.0 and gated.window_s == 10.0
    dumped = s.as_run()["sla"]["thresholds"]
    assert dumped == ["send_delay.p99 < 500ms", {**table}]
    assert from_dict(s.as_run(), "dump") == s
    assert s.results.interval == 1.0 and s.results.hlog and s.results.csv


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"threshold": "send_delay.p99 < 1s", "abort": True}, "abort: unknown field"),
        ({"abort_on_fail": True}, "threshold: Field required"),
        ({"threshold": "send_delay.p99 < soon"}, "'soon'"),
        ({"threshold": "send_delay.p99 < 1s", "grace": "later"}, "grace: 'later'"),
        ({"threshold": "send_delay.p99 < 1s", "abort_on_fail": "maybe"}, "abort_on_fail"),
        (42, "42"),
    ],
)
def test_bad_threshold_tables_name_the_field(entry: Any, says: str) -> None:
    where, why = problem(sla("send_delay.p99 < 1s", entry))
    assert where == "sla.thresholds[1]" and says in why


def test_windows_must_be_whole_intervals() -> None:
    where, why = problem(sla("send_delay.p99[1500ms] < 1s"))
    assert where == "sla.thresholds[0]" and "whole number of results.interval (1s)" in why
    where, why = problem(sla("send_delay.p99[5s] < 1s", results={"interval": "10s"}))
    assert "whole number of results.interval (10s)" in why
    assert from_dict(sla("send_delay.p99[20s] < 1s", results={"interval": "10s"}), "f")


def test_results_interval_is_whole_seconds() -> None:
    where, why = problem({"name": "x", "results": {"interval": "250ms"}})
    assert where == "results.interval" and "whole number of seconds" in why
    assert problem({"name": "x", "results": {"csv": "perhaps"}})[0] == "results.csv"
    assert from_dict({"name": "x", "results": {"interval": "5s"}}, "f").results.interval == 5.0


def test_worker_processes_judge_only_parent_metrics_live() -> None:
    workers = {"load": {"workers": 2}}
    where, why = problem(sla("submit_latency.p99[10s] < 1s", **workers))
    assert where == "sla.thresholds[0]" and "load.workers" in why
    table = {"threshold": "submit_latency.p99 < 1s", "abort_on_fail": True}
    assert "send_delay" in problem(sla(table, **workers))[1]
    ok = sla("send_delay.p99[10s] < 1s", "submit_latency.p99 < 1s", **workers)
    assert len(from_dict(ok, "f").sla.thresholds) == 2


# -- evaluation over windows ---------------------------------------------------------------
def test_the_worst_window_is_observed_and_named() -> None:
    t = parse_threshold("send_delay.p99[1m] < 500ms")
    c = check_windows(t, win(0.2, 0.7, 0.4, 0.9, 0.1))
    assert not c.passed and c.observed == 0.9 and c.name == "send_delay.p99[1m]"
    assert c.note == "worst window 180s–240s, 2 of 5 windows failed"
    ok = check_windows(t, win(0.2, 0.4, None))  # a window without values is skipped
    assert ok.passed and ok.observed == 0.4 and ok.note.startswith("worst window 60s–120s, 0 of 2")


def test_lower_bounds_take_the_lowest_window() -> None:
    t = parse_threshold("send_delay.count[10s] >= 100")
    ws = [(i * 10.0, {"send_delay": Fixed(count=n)}) for i, n in enumerate([150, 90, 120, 90])]
    c = check_windows(t, ws)
    assert c.observed == 90 and not c.passed and "worst window 10s–20s, 2 of 4" in c.note


def test_no_windows_or_no_values_is_no_data() -> None:
    t = parse_threshold("send_delay.p99[1m] < 500ms")
    assert check_windows(t, []).note == "no data"
    c = check_windows(t, win(None, None))
    assert not c.passed and c.observed is None and c.note == "no data"
    assert check_windows(t, [(0.0, {})]).note == "no data"


def test_evaluate_hands_each_threshold_its_windows() -> None:
    whole = parse_threshold("send_delay.p99 < 500ms")
    minute = parse_threshold("send_delay.p99[1m] < 500ms")
    ten = parse_threshold("send_delay.p99[10s] < 500ms")
    v = evaluate(
        "none",
        (whole, minute, ten),
        {"send_delay": Fixed(p99=0.3)},
        0,
        windows={60.0: win(0.3, 0.4), 10.0: win(0.2, 0.8, width=10.0)},
    )
    assert [c.passed for c in v.checks] == [True, True, False]
    assert v.checks[2].note.startswith("worst window 10s–20s")
    no_windows = evaluate("none", (minute,), {"send_delay": Fixed(p99=0.3)}, 0)
    assert no_windows.checks[0].note == "no data"


def test_windows_merge_interval_histograms() -> None:
    def interval(k: int, values_us: list[int]) -> Interval:
        h = new_histogram()
        for v in values_us:
            h.record_value(v)
        payload = h.encode().decode("ascii")
        return Interval(k, float(k), 1.0, {}, {}, {"send_delay": payload})

    ivs = [interval(k, [1000 * (k + 1)] * (k + 1)) for k in range(5)]
    ws = windows(ivs, 2.0, 1.0, ["send_delay"])
    assert [start for start, _ in ws] == [0.0, 2.0, 4.0]
    assert [m["send_delay"].stat("count") for _, m in ws] == [3, 7, 5]
    assert [m["send_delay"].stat("max") for _, m in ws] == pytest.approx(
        [0.002, 0.004, 0.005], rel=1e-3
    )
    start, last = last_window(ivs, 3.0, 1.0, ["send_delay", "delivery_delay"])
    assert start == 2.0 and last["send_delay"].stat("count") == 12
    assert last["delivery_delay"].stat("count") == 0 and last["delivery_delay"].stat("p99") is None
    t = parse_threshold("send_delay.max[2s] < 3ms")
    c = check_windows(t, ws)
    assert not c.passed and c.note.startswith("worst window 4s–6s, 2 of 3")


# -- abort on fail -------------------------------------------------------------------------
def gate_rule(text: str, grace: float = 0.0) -> Threshold:
    return Threshold(**{**_fields(parse_threshold(text)), "abort_on_fail": True, "grace_s": grace})


def _fields(t: Threshold) -> dict[str, Any]:
    return {k: getattr(t, k) for k in Threshold.__slots__}


def test_abort_gate_waits_for_grace_and_data() -> None:
    rule = gate_rule("send_delay.p99[1s] < 50ms", grace=1.0)
    gate = AbortGate([parse_threshold("send_delay.p99 < 1ms"), rule])
    assert gate and gate.rules == (rule,)
    slow = {"send_delay": HistStats(hist_us([200_000] * 10))}
    assert gate.check(0.5, {}, lambda w: (0.0, slow)) is None  # in its grace
    assert gate.check(2.0, {}, lambda w: (1.0, {})) is None  # no data: never a trip
    trip = gate.check(2.0, {}, lambda w: (1.0, slow))
    assert trip is not None and trip.threshold is rule
    assert trip.reason.startswith(
        "threshold send_delay.p99[1s] < 50ms failed at 2.0s: observed 200ms over the last 1s"
    )
    assert not AbortGate([parse_threshold("send_delay.p99 < 1ms")])


def test_abort_gate_judges_unwindowed_rules_on_the_run_so_far() -> None:
    rule = gate_rule("send_delay.count >= 100")
    gate = AbortGate([rule])
    trip = gate.check(3.0, {"send_delay": Fixed(count=7)}, lambda w: (0.0, {}))
    assert trip is not None and trip.reason == (
        "threshold send_delay.count >= 100 failed at 3.0s: observed 7"
    )


def test_the_aborting_threshold_fails_in_the_verdict() -> None:
    rule = gate_rule("send_delay.p99 < 500ms")
    other = parse_threshold("send_delay.max < 1h")
    thresholds = (other, rule)
    v = evaluate("exmail", thresholds, {"send_delay": Fixed(p99=0.1, max=0.2, mean=0.1)}, 0)
    assert v.passed
    trip = Trip(rule, 4.0, Check(rule.name, "<", 0.5, 0.9, False, "threshold"))
    marked = mark_aborted(v, thresholds, trip)
    assert not marked.passed
    assert [c.passed for c in marked.checks] == [True, True, True, False]
    assert marked.checks[-1].note == "aborted the run at 4.0s (observed 900ms)"
    assert marked.checks[-1].observed == 0.1  # the final value stays the final value


def hist_us(values: list[int]) -> Any:
    h = new_histogram()
    for v in values:
        h.record_value(v)
    return h
