"""Every size, count, rate and duration is bounded by validation with a stated maximum; an
infinite, NaN, zero-width or deeply nested value is refused naming its field, never a crash
later in the run (issue: limits and isolation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.delays import MAX_DURATION_S, parse_duration
from bench.config.scenario import ScenarioError, load

ROOT = Path(__file__).resolve().parents[2]
QUICK = ROOT / "scenarios" / "quickstart.toml"
RECEIVE = ROOT / "scenarios" / "receive.toml"


@pytest.mark.parametrize(
    ("override", "field", "why"),
    [
        ('message.size="1GiB"', "message.size", "must be <= 52428800"),
        ("message.users=10000000", "message.users", "must be <= 1000000"),
        ('load.duration="' + "9" * 400 + 's"', "load.duration", "is not a duration"),
        ('load.duration="745h"', "load.duration", "longer than 31 days"),
        ('load.drain="99999999h"', "load.drain", "longer than 31 days"),
        ('sla.availability_window="0.0000001us"', "sla.availability_window", "must be >= 1.0"),
        ("load.rate=1e-300", "load.rate", "must be >= 0.001"),
        ("load.rate=inf", "load.rate", "finite number"),
        ("load.rate=nan", "load.rate", "finite number"),
        ("load.rate=1000001", "load.rate", "must be <= 1000000"),
        ("load.max_messages=100000000000", "load.max_messages", "must be <= 1000000000"),
        ("load.sessions=100000", "load.sessions", "must be <= 10000"),
    ],
)
def test_out_of_bounds_values_are_refused_naming_the_field(
    override: str, field: str, why: str
) -> None:
    with pytest.raises(ScenarioError) as e:
        load(QUICK, [override])
    text = "\n".join(e.value.lines())
    assert f"{field}: " in text and why in text, text


def test_a_run_plans_at_most_a_billion_messages() -> None:
    with pytest.raises(ScenarioError, match="plans at most 1,000,000,000"):
        load(QUICK, ["load.rate=1000000", 'load.duration="20m"'])


def test_a_receiving_run_watches_a_bounded_number_of_mailboxes() -> None:
    with pytest.raises(ScenarioError, match="watches at most 100,000"):
        load(RECEIVE, ["message.users=200000"])


def test_deeply_nested_toml_is_a_clear_error(tmp_path: Path) -> None:
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ScenarioError, match="nested too deeply"):
        load(deep)
    with pytest.raises(ScenarioError, match="nested too deeply"):
        load(QUICK, ["load.rate=" + "[" * 5000 + "]" * 5000])


def test_durations_stop_at_a_month() -> None:
    assert parse_duration("744h") == MAX_DURATION_S
    for text in ("745h", "1e400s", "9" * 70 + "s"):
        with pytest.raises(ValueError):
            parse_duration(text)
