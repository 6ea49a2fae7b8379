"""bench.config.units: sizes and durations as users write them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.config.units import format_duration, format_size, parse_duration, parse_size

# -- parse_size -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("512", 512),
        ("512B", 512),
        ("0", 0),
        ("2KiB", 2048),
        (" 2 KiB ", 2048),
        ("1.5KiB", 1536),
        ("1MiB", 1024**2),
        ("3GiB", 3 * 1024**3),
        ("100KB", 100_000),
        ("2MB", 2_000_000),
        ("1GB", 10**9),
        ("4k", 4096),
        ("4K", 4096),
        ("2M", 2 * 1024**2),
        ("1.", 1),
    ],
)
def test_parse_size(text: str, n: int) -> None:
    got = parse_size(text)
    assert got == n
    assert type(got) is int


def test_parse_size_passes_ints_through() -> None:
    assert parse_size(4096) == 4096


@pytest.mark.parametrize("text", ["", "KiB", "-1", "-1KiB", "2 parsecs", "2kib", "1e3", "2 Ki B"])
def test_parse_size_rejects_and_quotes(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size") as info:
        parse_size(text)
    assert repr(text) in str(info.value)


def test_parse_size_rejects_negative_int() -> None:
    with pytest.raises(ValueError):
        parse_size(-5)


# -- format_size ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0B"),
        (1, "1B"),
        (1000, "1000B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (1536, "1536B"),
        (2048, "2KiB"),
        (4096, "4KiB"),
        (1024**2, "1MiB"),
        (1024**2 + 1024, "1025KiB"),
        (3 * 1024**3, "3072MiB"),
    ],
)
def test_format_size(n: int, text: str) -> None:
    assert format_size(n) == text


@given(st.integers(0, 2**50))
def test_size_round_trip(n: int) -> None:
    assert parse_size(format_size(n)) == n


@given(st.integers(0, 10**6), st.sampled_from([("B", 1), ("KiB", 1024), ("MiB", 1024**2)]))
def test_parse_size_whole_units(k: int, unit: tuple[str, int]) -> None:
    assert parse_size(f"{k}{unit[0]}") == k * unit[1]


# -- format_duration --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0, "0s"),
        (0.25, "250ms"),
        (0.010, "10ms"),
        (1, "1s"),
        (20, "20s"),
        (20.0, "20s"),
        (59, "59s"),
        (60, "1m"),
        (90, "90s"),
        (300, "5m"),
        (3600, "1h"),
        (5400, "90m"),
        (7200, "2h"),
        (1.5, "1.5s"),
        (0.0015, "1.5ms"),
        (1e-6, "1us"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@given(st.integers(0, 31 * 86400))
def test_whole_seconds_round_trip_exactly(n: int) -> None:
    assert parse_duration(format_duration(n)) == n


@given(st.integers(1, 10**6))
def test_whole_microseconds_round_trip_closely(n: int) -> None:
    seconds = n * 1e-6
    text = format_duration(seconds)
    assert math.isclose(parse_duration(text), seconds, rel_tol=1e-12)
    # The shortest form: never a bigger number in a smaller unit than needed.
    assert text.endswith(("us", "ms", "s", "m", "h"))


@given(st.integers(1, 744), st.sampled_from(["us", "ms", "s", "m", "h"]))
def test_format_of_parsed_whole_units_is_same_or_coarser(k: int, unit: str) -> None:
    text = format_duration(parse_duration(f"{k}{unit}"))
    order = ["us", "ms", "s", "m", "h"]
    got_unit = text.lstrip("0123456789.")
    assert order.index(got_unit) >= order.index(unit)


def test_format_duration_output_always_parses_sub_microsecond() -> None:
    parse_duration(format_duration(1.5e-6))


def test_format_duration_lossless_for_fractions() -> None:
    assert parse_duration(format_duration(1 / 3)) == 1 / 3


def test_format_duration_round_trip_exact_for_user_value() -> None:
    x = parse_duration("2.3s")
    assert parse_duration(format_duration(x)) == x


def test_format_duration_keeps_whole_microseconds() -> None:
    x = parse_duration("16158891us")
    assert math.isclose(parse_duration(format_duration(x)), x, rel_tol=1e-12)


def test_parse_duration_is_reexported() -> None:
    assert parse_duration("1h") == 3600.0
