"""bench.config.advice: what ``mailsla validate`` warns about in a valid scenario."""

from __future__ import annotations

from typing import Any

from bench.config.advice import last_send_s, warnings
from bench.config.scenario import from_dict


def sc_with(**sections: Any) -> Any:
    return from_dict({"name": "w", **sections}, "f.toml")


def test_a_plain_scenario_has_nothing_to_warn_about() -> None:
    assert warnings(sc_with()) == []


def test_an_outage_running_on_into_the_drain() -> None:
    sc = sc_with(
        fakemta={"outages": [{"at": "15s", "for": "10s"}]},
        load={"duration": "20s", "drain": "30s"},
    )
    (w,) = warnings(sc)
    assert w.startswith("fakemta.outages[0]: refuse from 15s to 25s outlasts the sending (20s)")
    assert "by 5s" in w and "drain" in w


def test_an_outage_still_on_when_the_run_ends() -> None:
    sc = sc_with(
        fakemta={"outages": [{"at": "15s", "for": "1m", "kind": "stall"}]},
        load={"duration": "20s", "drain": "10s"},
    )
    (w,) = warnings(sc)
    assert w.startswith("fakemta.outages[0]: stall from 15s to 75s is still on when the run ends")


def test_an_outage_after_the_last_planned_send() -> None:
    sc = sc_with(
        fakemta={"outages": [{"at": "10s", "for": "1s"}]},
        load={"duration": "20s", "rate": 10, "max_messages": 50},
    )
    (w,) = warnings(sc)
    assert w.startswith("fakemta.outages[0].at: 10s is after the last planned send (about 5s")


def test_last_send_of_capped_schedules() -> None:
    assert last_send_s(sc_with(load={"rate": 10, "max_messages": 50}).load) == 5.0
    assert last_send_s(sc_with(load={"rate": 10, "max_messages": 5000}).load) is None
    assert last_send_s(sc_with(load={"rate": 10}).load) is None
    steps = [{"rate": 10, "duration": "10s"}, {"rate": 50, "duration": "10s"}]
    load_ = sc_with(load={"model": "steps", "steps": steps, "max_messages": 200}).load
    assert last_send_s(load_) == 12.0


def test_fake_mta_faults_are_ignored_by_a_real_system() -> None:
    sc = sc_with(
        system={"kind": "smtp", "submit": "127.0.0.1:2525"},
        postoffice={"listen": "127.0.0.1:2526"},
        fakemta={"faults": [{"stage": "dot", "kind": "4xx", "probability": 0.1}]},
    )
    assert warnings(sc) == [
        'fakemta.faults: ignored with system.kind = "smtp" (only the embedded fake MTA '
        "injects them)"
    ]


def test_thresholds_that_cannot_act_or_judge_as_written() -> None:
    sc = sc_with(
        load={"duration": "10s", "drain": "5s"},
        sla={
            "thresholds": [
                {"threshold": "send_delay.p99 < 1s", "abort_on_fail": True, "grace": "12s"},
                {"threshold": "send_delay.max < 5s", "abort_on_fail": True, "grace": "15s"},
                "send_delay.p99[1m] < 1s",
                "send_delay.p99[5s] < 1s",
            ]
        },
    )
    w = warnings(sc)
    assert len(w) == 3, w
    assert w[0].startswith("sla.thresholds[0]: 'send_delay.p99 < 1s': grace 12s")
    assert "only in the drain" in w[0]
    assert w[1].startswith("sla.thresholds[1]") and "can never stop it" in w[1]
    assert w[2].startswith("sla.thresholds[2]") and "one partial window" in w[2]
