"""bench.verdict.sla: thresholds and the exmail profile, turned into checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.config.names import KNOWN_METRICS
from bench.config.thresholds import Threshold, ThresholdError, parse_threshold
from bench.core.metrics import Metric
from bench.verdict.sla import EXMAIL_MAX_S, EXMAIL_MEAN_S, evaluate


def metric(name: str, *seconds: float) -> Metric:
    m = Metric(name)
    for s in seconds:
        m.record(round(s * 1e9))
    return m


class Fixed:
    """A StatSource with given statistics."""

    def __init__(self, **stats: float | None) -> None:
        self.stats = stats

    def stat(self, name: str) -> float | None:
        return self.stats.get(name)


# -- parse_threshold --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "metric_", "stat", "op", "limit"),
    [
        ("send_delay.p99 < 500ms", "send_delay", "p99", "<", 0.5),
        ("send_delay.p99.9 < 1s", "send_delay", "p99.9", "<", 1.0),
        ("send_delay.p50<=2s", "send_delay", "p50", "<=", 2.0),
        ("send_delay.p100 <= 1h", "send_delay", "p100", "<=", 3600.0),
        ("submit_latency.mean <= 1s", "submit_latency", "mean", "<=", 1.0),
        ("service_time.min >= 1ms", "service_time", "min", ">=", 0.001),
        ("delivery_delay.max > 250us", "delivery_delay", "max", ">", 0.00025),
        ("send_delay.count >= 1000", "send_delay", "count", ">=", 1000.0),
        ("receive_delay.count > 0", "receive_delay", "count", ">", 0.0),
        ("stage.data.p99 < 20ms", "stage.data", "p99", "<", 0.02),
        ("stage.connect.max < 1s", "stage.connect", "max", "<", 1.0),
        ("  schedule_lag.p90   <   5m  ", "schedule_lag", "p90", "<", 300.0),
    ],
)
def test_parse_threshold(text: str, metric_: str, stat: str, op: str, limit: float) -> None:
    t = parse_threshold(text)
    assert (t.metric, t.stat, t.op) == (metric_, stat, op)
    assert t.limit == pytest.approx(limit, rel=1e-12)
    assert t.text == text.strip()
    assert t.name == f"{metric_}.{stat}"


@pytest.mark.parametrize("name", KNOWN_METRICS)
def test_every_known_metric_parses(name: str) -> None:
    assert parse_threshold(f"{name}.p99 < 1s").metric == name


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "is not a threshold"),
        ("nope", "is not a threshold"),
        ("send_delay.p99", "is not a threshold"),
        ("send_delay.p99 = 1s", "is not a threshold"),
        ("send_delay.p99 == 1s", "is not a threshold"),
        ("send_delay.p99 <", "is not a threshold"),
        ("send_delay < 1s", "is not a threshold"),
        ("send_delay.median < 1s", "is not a threshold"),
        ("send_delay.p < 1s", "is not a threshold"),
        ("bogus.p99 < 1s", "unknown metric 'bogus'"),
        ("stage.smtp.p99 < 1s", "unknown metric 'stage.smtp'"),
        ("send_delay.p0 < 1s", "'p0'"),
        ("send_delay.p100.1 < 1s", "'p100.1'"),
        ("send_delay.p101 < 1s", "'p101'"),
        ("send_delay.p99 < soon", "'soon' is not a duration"),
        ("send_delay.p99 < 500", "'500' is not a duration"),
        ("send_delay.p99 < -1s", "'-1s'"),
        ("send_delay.count >= 1.5", "whole number, not '1.5'"),
        ("send_delay.count >= 10ms", "whole number, not '10ms'"),
    ],
)
def test_parse_threshold_errors_quote_input(text: str, says: str) -> None:
    with pytest.raises(ThresholdError) as info:
        parse_threshold(text)
    msg = str(info.value)
    assert msg.startswith(repr(text))
    assert says in msg
    assert isinstance(info.value, ValueError)


def test_parse_threshold_rejects_non_string() -> None:
    with pytest.raises(ThresholdError, match="is not a threshold"):
        parse_threshold(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("op", "below", "at", "above"),
    [
        ("<", True, False, False),
        ("<=", True, True, False),
        (">", False, False, True),
        (">=", False, True, True),
    ],
)
def test_holds_on_both_sides(op: str, below: bool, at: bool, above: bool) -> None:
    t = parse_threshold(f"send_delay.p99 {op} 500ms")
    assert (t.holds(0.499), t.holds(0.5), t.holds(0.501)) == (below, at, above)


# -- evaluate ---------------------------------------------------------------------------------


def by_name(checks: tuple[object, ...]) -> dict[str, object]:
    return {c.name: c for c in checks}  # type: ignore[attr-defined]


def test_exmail_passes_with_good_data() -> None:
    v = evaluate("exmail", (), {"send_delay": metric("send_delay", 0.1, 0.2, 0.3)}, 0)
    assert v.passed
    assert [(c.name, c.op, c.limit, c.source) for c in v.checks] == [
        ("send_delay.mean", "<=", EXMAIL_MEAN_S, "exmail"),
        ("send_delay.max", "<=", EXMAIL_MAX_S, "exmail"),
    ]
    assert v.checks[0].observed == pytest.approx(0.2)
    assert v.checks[1].observed == pytest.approx(0.3)
    assert v.as_dict()["verdict"] == "pass"


def test_exmail_limits_are_the_sla() -> None:
    assert (EXMAIL_MEAN_S, EXMAIL_MAX_S) == (60.0, 3600.0)


def test_undelivered_fails_the_max_check() -> None:
    v = evaluate("exmail", (), {"send_delay": metric("send_delay", 0.1)}, undelivered=3)
    mean, mx = v.checks
    assert mean.passed
    assert not mx.passed
    assert mx.observed == pytest.approx(0.1)
    assert "3 message(s) undelivered" in mx.note
    assert not v.passed
    d = v.as_dict()
    assert d["verdict"] == "fail"
    assert d["checks"][1]["pass"] is False and "note" in d["checks"][1]
    assert "note" not in d["checks"][0]


@pytest.mark.parametrize(
    "metrics", [{}, {"send_delay": Metric("send_delay")}, {"send_delay": Fixed(mean=float("nan"))}]
)
def test_no_data_fails(metrics: dict[str, Metric]) -> None:
    v = evaluate("exmail", (), metrics, 0)
    assert not v.passed
    assert v.checks[0].note == "no data" and v.checks[0].observed is None
    assert v.as_dict()["checks"][0]["observed"] is None


@pytest.mark.parametrize(
    ("values", "mean_ok", "max_ok"),
    [
        ((59.0, 61.0), True, True),
        ((60.0,), True, True),
        ((60.5,), False, True),
        ((3600.0,) + (0.0,) * 59, True, True),
        ((3600.5,) + (0.0,) * 60, True, False),
        ((200.0, 3700.0), False, False),
    ],
)
def test_exmail_limits_both_sides(values: tuple[float, ...], mean_ok: bool, max_ok: bool) -> None:
    v = evaluate("exmail", (), {"send_delay": metric("send_delay", *values)}, 0)
    assert [c.passed for c in v.checks] == [mean_ok, max_ok]


def test_exmail_directions() -> None:
    ms = {"send_delay": metric("s", 1.0), "receive_delay": metric("r", 100.0)}
    v = evaluate("exmail", (), ms, 0, directions=("send", "receive"))
    assert [c.name for c in v.checks] == [
        "send_delay.mean",
        "send_delay.max",
        "receive_delay.mean",
        "receive_delay.max",
    ]
    assert [c.passed for c in v.checks] == [True, True, False, True]


def test_profile_none_has_only_thresholds() -> None:
    t = parse_threshold("send_delay.max < 1s")
    v = evaluate("none", (t,), {"send_delay": metric("send_delay", 0.5)}, undelivered=10)
    assert [c.name for c in v.checks] == ["send_delay.max"]
    assert v.checks[0].source == "threshold" and v.passed


@pytest.mark.parametrize(
    ("text", "passes"),
    [
        ("send_delay.max < 400ms", False),
        ("send_delay.max < 401ms", True),
        ("send_delay.min > 100ms", False),
        ("send_delay.min >= 100ms", True),
        ("send_delay.mean <= 250ms", True),
        ("send_delay.mean < 250ms", False),
        ("send_delay.count >= 4", True),
        ("send_delay.count > 4", False),
        ("send_delay.p50 < 150ms", False),
        ("send_delay.p50 < 350ms", True),
        ("send_delay.p99.9 < 500ms", True),
        ("send_delay.p99.9 < 300ms", False),
    ],
)
def test_thresholds_pass_and_fail(text: str, passes: bool) -> None:
    ms = {"send_delay": metric("send_delay", 0.1, 0.2, 0.3, 0.4)}
    v = evaluate("none", (parse_threshold(text),), ms, 0)
    (check,) = v.checks
    assert check.passed is passes
    assert v.passed is passes


def test_count_threshold_on_empty_metric_sees_zero() -> None:
    v = evaluate(
        "none", (parse_threshold("send_delay.count >= 1"),), {"send_delay": Metric("x")}, 0
    )
    assert v.checks[0].observed == 0.0 and not v.passed


def test_threshold_on_missing_metric_fails() -> None:
    v = evaluate("none", (parse_threshold("receive_delay.p99 < 1s"),), {}, 0)
    assert not v.passed and v.checks[0].note == "no data"


def test_profile_checks_come_before_thresholds() -> None:
    ts = (parse_threshold("send_delay.p99 < 1s"), parse_threshold("send_delay.count >= 1"))
    v = evaluate("exmail", ts, {"send_delay": metric("send_delay", 0.5)}, 0)
    assert [c.source for c in v.checks] == ["exmail", "exmail", "threshold", "threshold"]
    assert v.passed


def test_one_failure_fails_the_verdict() -> None:
    ts = (parse_threshold("send_delay.p99 < 1s"), parse_threshold("send_delay.count >= 2"))
    v = evaluate("exmail", ts, {"send_delay": metric("send_delay", 0.5)}, 0)
    assert [c.passed for c in v.checks] == [True, True, True, False]
    assert not v.passed and v.as_dict()["verdict"] == "fail"


@given(st.floats(0, 7200, allow_nan=False), st.floats(0.001, 7200, allow_nan=False))
def test_threshold_verdict_agrees_with_comparison(observed: float, limit: float) -> None:
    t = Threshold("send_delay", "max", "<", limit, f"send_delay.max < {limit}s")
    v = evaluate("none", (t,), {"send_delay": Fixed(max=observed)}, 0)
    assert v.passed is (observed < limit)
    assert v.checks[0].observed == observed
