"""A fake MTA outage must begin while mail is sent: one at or after the end of sending is
refused (naming fakemta.outages[i].at), one that runs on into the drain is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.config.scenario import ScenarioError, from_dict, load

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


def outage_scenario(at: str, duration: str = "20s", **load_: Any) -> dict[str, Any]:
    return {
        "name": "o",
        "fakemta": {"outages": [{"at": at, "for": "5s"}]},
        "load": {"duration": duration, **load_},
    }


def refusal(data: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ScenarioError) as info:
        from_dict(data, "f.toml")
    (problem,) = info.value.problems
    return problem


@pytest.mark.parametrize("at", ["20s", "21s", "1h"])
def test_an_outage_from_the_end_of_sending_on_is_refused(at: str) -> None:
    field, why = refusal(outage_scenario(at))
    assert field == "fakemta.outages[0].at"
    assert "not before the end of sending" in why and "load.duration is 20s" in why
    assert "never happen" in why


def test_the_refusal_names_the_outage_that_is_late() -> None:
    data = outage_scenario("1s")
    data["fakemta"]["outages"].append({"at": "30s", "for": "1s", "kind": "421"})
    assert refusal(data)[0] == "fakemta.outages[1].at"


@pytest.mark.parametrize("at", ["0s", "10s", "19.9s"])
def test_an_outage_inside_the_sending_is_fine_even_past_its_end(at: str) -> None:
    sc = from_dict(outage_scenario(at), "f.toml")  # 19.9s + 5s ends in the drain: allowed
    assert sc.fakemta.outages[0].duration == 5.0


def test_the_steps_model_counts_the_steps_total() -> None:
    steps = [{"rate": 10, "duration": "10s"}, {"rate": 20, "duration": "5s"}]
    ok = outage_scenario("14s", duration="1s", model="steps", steps=steps)
    assert from_dict(ok, "f.toml").load.sending_s == 15.0
    field, why = refusal(outage_scenario("15s", duration="1m", model="steps", steps=steps))
    assert field == "fakemta.outages[0].at" and "load.steps add up to 15s" in why


def test_a_real_system_has_no_fake_mta_outages_to_judge() -> None:
    data = outage_scenario("1m")
    data |= {
        "system": {"kind": "smtp", "submit": "127.0.0.1:2525"},
        "postoffice": {"listen": "127.0.0.1:2526"},
    }
    assert from_dict(data, "f.toml").system.kind == "smtp"  # ignored, validate warns


def test_the_shipped_outage_scenario_shortened_is_refused_naming_file_and_field() -> None:
    with pytest.raises(ScenarioError) as info:
        load(SCENARIOS / "outage.toml", ['load.duration="5s"'])
    line = info.value.lines()[0]
    assert line.startswith(f'{SCENARIOS / "outage.toml"} (with --set load.duration="5s"): ')
    assert ": fakemta.outages[0].at: 1m is not before the end of sending" in line
