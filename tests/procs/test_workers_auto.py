"""workers = "auto": the machine's cores, halved when the system under test shares them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.config.scenario import ScenarioError, from_dict, load, procs
from bench.run.wiring import resolve_workers


def sc(**sections: Any) -> Any:
    return from_dict({"name": "w", **sections}, "t.toml")


def workers(s: Any, cores: int) -> tuple[int, int]:
    r = resolve_workers(s, cores)
    return procs(r.load.workers), procs(r.postoffice.workers)


@pytest.mark.parametrize(
    ("system", "cores", "want"),
    [
        ({}, 2, (1, 1)),  # the embedded fake MTA shares the machine
        ({}, 8, (4, 2)),
        ({"kind": "smtp", "submit": "127.0.0.1:2525"}, 8, (4, 2)),  # loopback: shared
        ({"kind": "smtp", "submit": "localhost:2525"}, 2, (1, 1)),
        ({"kind": "smtp", "submit": "[::1]:2525"}, 16, (8, 4)),
        ({"kind": "smtp", "submit": "10.1.2.3:25"}, 8, (8, 4)),  # elsewhere: all of it
        ({"kind": "smtp", "submit": "mx.example.net:25"}, 2, (2, 1)),
        ({}, 1, (1, 1)),
    ],
)
def test_auto_by_where_the_system_runs(system: dict[str, str], cores: int, want: tuple) -> None:
    fixed = {"postoffice": {"listen": "127.0.0.1:2600"}}
    s = sc(system=system, allow_remote=True, **fixed) if system else sc()
    assert workers(s, cores) == want


def test_explicit_counts_are_kept() -> None:
    s = sc(load={"workers": 3}, postoffice={"workers": 5})
    assert workers(s, 64) == (3, 5)


def test_never_more_generator_processes_than_sessions() -> None:
    # each process sends on sessions of its own: more would add sessions the scenario lacks
    remote = {"kind": "smtp", "submit": "10.1.2.3:25"}
    s = sc(
        system=remote,
        allow_remote=True,
        postoffice={"listen": "127.0.0.1:2600"},
        load={"sessions": 3},
    )
    assert workers(s, 8) == (3, 4)
    with pytest.raises(ScenarioError) as info:
        sc(load={"sessions": 2, "workers": 4})
    assert info.value.problems[0][0] == "load.workers"
    assert "load.sessions is 2" in info.value.problems[0][1]


def test_inbound_and_live_generator_thresholds_keep_one_generator() -> None:
    assert workers(sc(load={"direction": "both"}), 8)[0] == 1
    live = {"thresholds": ["submit_latency.p99[5s] < 1s"]}
    assert workers(sc(sla=live), 8)[0] == 1
    parent = {"thresholds": ["send_delay.p99[5s] < 1s"]}  # the runner keeps this one itself
    assert workers(sc(sla=parent), 8)[0] == 4


def test_unresolved_auto_is_refused_where_a_number_is_needed() -> None:
    with pytest.raises(ValueError, match="resolved when the run starts"):
        procs(sc().load.workers)


def test_bad_workers_name_the_field(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('name = "w"\n[load]\nworkers = "many"\n')
    with pytest.raises(ScenarioError, match=r"load\.workers"):
        load(f)
    f.write_text('name = "w"\n[postoffice]\nworkers = 0\n')
    with pytest.raises(ScenarioError, match=r"postoffice\.workers"):
        load(f)
