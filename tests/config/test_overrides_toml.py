"""``--set`` values that were meant as TOML but are not valid TOML get a clear message naming
the key and tomllib's reason (not pydantic's "Input should be a valid tuple")."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.config.scenario import ScenarioError, apply_overrides, load, parse_override

QUICK = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.toml"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('fakemta.faults=[{stage=dot, kind="delay", probability=1.0}]', "fakemta.faults"),
        ("sla.thresholds=[send_delay.p99 < 1s]", "sla.thresholds"),
        ("fakemta.faults=[{stage=", "fakemta.faults"),
        ('name="unterminated', "name"),
        ("load={rate=}", "load"),
    ],
)
def test_broken_toml_names_the_key_and_the_toml_error(text: str, key: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_override(text)
    ((field, why),) = info.value.problems
    assert field == key
    value = text.partition("=")[2]
    assert why.startswith(f"{value!r} is not valid TOML: ")
    assert "valid tuple" not in why


def test_the_position_is_counted_in_the_value() -> None:
    with pytest.raises(ScenarioError) as info:
        parse_override("fakemta.faults=[{stage=dot}]")
    why = info.value.problems[0][1]
    # [{stage=dot}]: the bad value begins at the 9th character of what the user wrote
    assert "(at character 9)" in why and "column" not in why
    assert "single quotes" in why  # the shell ate the quotes: say so


def test_plain_strings_still_need_no_quotes() -> None:
    assert parse_override("load.duration=5s") == (["load", "duration"], "5s")
    assert parse_override("system.submit=127.0.0.1:25") == (["system", "submit"], "127.0.0.1:25")
    assert parse_override("p=uniform(1ms, 2ms)") == (["p"], "uniform(1ms, 2ms)")


def test_through_load_the_file_is_named_and_nothing_leaks(tmp_path: Path) -> None:
    text = 'fakemta.faults=[{stage=dot, kind="delay", probability=1.0, duration="const(10s)"}]'
    with pytest.raises(ScenarioError) as info:
        load(QUICK, [text])
    line = info.value.lines()[0]
    assert line.startswith(f"{QUICK} (with --set {text}): fakemta.faults: ")
    assert "not valid TOML" in line and "tuple" not in line


def test_a_string_where_an_array_belongs_says_array() -> None:
    with pytest.raises(ScenarioError) as info:
        load(QUICK, ["fakemta.faults=dot:delay:1.0:10s"])
    ((field, why),) = info.value.problems
    assert field == "fakemta.faults"
    assert why.startswith("must be an array, [...] in TOML (got 'dot:delay:1.0:10s')")


def test_a_string_where_a_table_belongs_says_table() -> None:
    with pytest.raises(ScenarioError) as info:
        load(QUICK, ['fakemta.faults=["dot"]'])
    ((field, why),) = info.value.problems
    assert field == "fakemta.faults[0]" and why.startswith("must be a table")


def test_apply_overrides_raises_the_same() -> None:
    with pytest.raises(ScenarioError) as info:
        apply_overrides({}, ["load.steps=[{rate=1"])
    assert info.value.problems[0][0] == "load.steps"
