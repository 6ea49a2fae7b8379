"""bench.config.delays: durations and delay distributions."""

from __future__ import annotations

import dataclasses
import math
import pickle
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.config.delays import MAX_DURATION_S, Delay, parse_delay, parse_duration

# -- parse_duration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("20s", 20.0),
        ("5m", 300.0),
        ("5min", 300.0),
        ("1h", 3600.0),
        ("1.5h", 5400.0),
        ("100us", 1e-4),
        ("100µs", 1e-4),
        ("0s", 0.0),
        (".5s", 0.5),
        ("2.s", 2.0),
        (" 2 s ", 2.0),
        ("10 ms", 0.01),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(
    "text", ["", "10", "ten", "-5s", "5 sec", "5d", "1e3s", "s", "5ss", "5 m s", "5S", "1,5s"]
)
def test_parse_duration_rejects_and_quotes(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


@given(st.integers(0, 10**9), st.sampled_from(sorted(UNITS)))
def test_parse_duration_whole_numbers(n: int, unit: str) -> None:
    if n * UNITS[unit] > MAX_DURATION_S:  # longer than a month: refused, naming the bound
        with pytest.raises(ValueError, match="longer than 31 days"):
            parse_duration(f"{n}{unit}")
        return
    got = parse_duration(f"{n}{unit}")
    assert got >= 0
    assert math.isclose(got, n * UNITS[unit], rel_tol=1e-12)


@given(st.integers(0, 10**6), st.integers(0, 999))
def test_parse_duration_decimals(whole: int, frac: int) -> None:
    assert math.isclose(parse_duration(f"{whole}.{frac:03d}s"), whole + frac / 1000, rel_tol=1e-12)


# -- parse_delay ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "a", "b"),
    [
        ("const(10ms)", "const", 0.01, 0.0),
        ("uniform(5ms, 50ms)", "uniform", 0.005, 0.05),
        ("uniform(5ms,50ms)", "uniform", 0.005, 0.05),
        ("uniform(1s, 1s)", "uniform", 1.0, 1.0),
        ("exp(20ms)", "exp", 0.02, 0.0),
        ("lognormal(20ms, 0.5)", "lognormal", 0.02, 0.5),
        ("lognormal(1s, 0)", "lognormal", 1.0, 0.0),
        ("lognormal(1s, 10)", "lognormal", 1.0, 10.0),
        ("  uniform( 1s , 2s )  ", "uniform", 1.0, 2.0),
        ("30ms", "const", 0.03, 0.0),
        ("0s", "const", 0.0, 0.0),
    ],
)
def test_parse_delay(text: str, kind: str, a: float, b: float) -> None:
    d = parse_delay(text)
    assert d.kind == kind
    assert d.a == pytest.approx(a, rel=1e-12)
    assert d.b == pytest.approx(b, rel=1e-12)
    assert str(d) == text.strip()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("normal(1s, 2s)", "unknown distribution 'normal'"),
        ("Uniform(1s, 2s)", "not a delay distribution"),
        ("soon", "not a delay distribution"),
        ("", "not a delay distribution"),
        ("const()", "takes 1 argument"),
        ("const(1s, 2s)", "takes 1 argument"),
        ("exp(1s, 2s)", "takes 1 argument"),
        ("uniform(1s)", "takes 2 argument"),
        ("uniform(1s, )", "takes 2 argument"),
        ("uniform(1s 2s)", "takes 2 argument"),
        ("uniform(1s, 2s, 3s)", "takes 2 argument"),
        ("lognormal(1s)", "takes 2 argument"),
        ("uniform(50ms, 5ms)", "a <= b"),
        ("uniform(ten, 5ms)", "'ten' is not a duration"),
        ("exp(-1s)", "'-1s' is not a duration"),
        ("lognormal(1s, 2s)", "'2s'"),
        ("lognormal(1s, -0.1)", "sigma"),
        ("lognormal(1s, 10.5)", "sigma"),
        ("lognormal(1s, nan)", "sigma"),
        ("lognormal(1s, inf)", "sigma"),
    ],
)
def test_parse_delay_rejects_and_quotes(text: str, says: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_delay(text)
    msg = str(info.value)
    assert msg.startswith(repr(text))
    assert says in msg


# -- Delay ------------------------------------------------------------------------------------


def test_delay_is_frozen_and_picklable() -> None:
    d = parse_delay("lognormal(20ms, 0.5)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.a = 1.0  # type: ignore[misc]
    back = pickle.loads(pickle.dumps(d))
    assert back == d and str(back) == "lognormal(20ms, 0.5)"


def test_str_without_text() -> None:
    assert str(Delay("uniform", 1.0, 2.0)) == "uniform(1.0, 2.0)"


@given(st.integers(0, 10**6), st.integers(0, 2**32))
def test_const_sample_is_exact(ms: int, seed: int) -> None:
    d = parse_delay(f"const({ms}ms)")
    assert d.sample(random.Random(seed)) == d.a == d.mean


@given(st.integers(0, 10**5), st.integers(0, 10**5), st.integers(0, 2**32))
def test_uniform_sample_in_range(x: int, y: int, seed: int) -> None:
    lo, hi = sorted((x, y))
    d = parse_delay(f"uniform({lo}ms, {hi}ms)")
    rng = random.Random(seed)
    for _ in range(20):
        assert d.a <= d.sample(rng) <= d.b


@given(st.sampled_from(["exp(20ms)", "lognormal(20ms, 0.5)", "uniform(0s, 1s)"]), st.integers())
def test_sample_is_deterministic_per_seed(text: str, seed: int) -> None:
    d = parse_delay(text)
    r1, r2 = random.Random(seed), random.Random(seed)
    assert [d.sample(r1) for _ in range(5)] == [d.sample(r2) for _ in range(5)]


@given(st.sampled_from(["exp(20ms)", "lognormal(20ms, 2)"]), st.integers(0, 2**32))
def test_samples_are_non_negative(text: str, seed: int) -> None:
    d, rng = parse_delay(text), random.Random(seed)
    assert all(d.sample(rng) >= 0 for _ in range(50))


@pytest.mark.parametrize("text", ["exp(0s)", "lognormal(0s, 1)"])
def test_zero_scale_samples_zero(text: str) -> None:
    d = parse_delay(text)
    assert d.sample(random.Random(1)) == 0.0
    assert d.mean == 0.0


@pytest.mark.parametrize(
    ("text", "mean"),
    [
        ("const(10ms)", 0.01),
        ("uniform(5ms, 50ms)", 0.0275),
        ("exp(20ms)", 0.02),
        ("lognormal(20ms, 0.5)", 0.02 * math.exp(0.125)),
        ("lognormal(1s, 0)", 1.0),
        ("2s", 2.0),
    ],
)
def test_mean(text: str, mean: float) -> None:
    assert parse_delay(text).mean == pytest.approx(mean, rel=1e-12)


@pytest.mark.parametrize(
    "text", ["uniform(5ms, 50ms)", "exp(20ms)", "lognormal(20ms, 0.5)", "lognormal(30ms, 0.6)"]
)
def test_sample_mean_matches_mean(text: str) -> None:
    d = parse_delay(text)
    rng = random.Random(12345)
    xs = [d.sample(rng) for _ in range(40_000)]
    # Five standard errors: with a fixed seed this is deterministic, and generous enough.
    se = statistics.stdev(xs) / math.sqrt(len(xs))
    assert abs(statistics.fmean(xs) - d.mean) < 5 * se


def test_lognormal_median_is_first_argument() -> None:
    d = parse_delay("lognormal(20ms, 0.8)")
    rng = random.Random(7)
    xs = sorted(d.sample(rng) for _ in range(20_001))
    assert xs[10_000] == pytest.approx(0.02, rel=0.03)


def test_exp_is_not_const() -> None:
    d = parse_delay("exp(20ms)")
    rng = random.Random(3)
    xs = [d.sample(rng) for _ in range(1000)]
    assert len(set(xs)) == 1000
    # The exponential's standard deviation equals its mean.
    assert statistics.stdev(xs) == pytest.approx(0.02, rel=0.15)
