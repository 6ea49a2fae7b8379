"""bench.config.scenario: TOML -> frozen Scenario, --set overrides, and errors as
"FILE: field.path: why"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bench.config.scenario import ScenarioError, apply_overrides, from_dict, load, parse_override

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
SHIPPED = sorted(SCENARIOS.glob("*.toml"))
SMTP_OK: dict[str, Any] = {
    "name": "ext",
    "system": {"kind": "smtp", "submit": "127.0.0.1:2525"},
    "postoffice": {"listen": "127.0.0.1:2526"},
}


def problems(data: dict[str, Any], source: str = "f.toml") -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as info:
        from_dict(data, source)
    err = info.value
    assert err.source == source
    assert len(err.lines()) == len(err.problems) >= 1
    assert str(err) == err.lines()[0]
    return err.problems


def only_problem(data: dict[str, Any]) -> tuple[str, str]:
    found = problems(data)
    assert len(found) == 1, found
    return found[0]


# -- shipped scenarios ------------------------------------------------------------------------


def test_the_shipped_scenarios_exist() -> None:
    assert {"quickstart.toml", "steady.toml"} <= {p.name for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_validates_and_round_trips(path: Path) -> None:
    s = load(path)
    assert s.name == path.stem
    assert from_dict(s.as_run(), "dump") == s


def test_quickstart_values() -> None:
    s = load(SCENARIOS / "quickstart.toml")
    assert (s.seed, s.system.kind, s.load.model) == (1, "fakemta", "constant")
    assert s.load.rate == 200.0
    assert s.load.duration == 20.0
    assert s.load.drain == 5.0
    assert s.message.size == 2048
    assert s.fakemta.processing_delay.kind == "uniform"
    assert s.fakemta.processing_delay.a == pytest.approx(0.005)
    assert s.fakemta.processing_delay.b == pytest.approx(0.050)
    assert s.postoffice.listen == ("127.0.0.1", 0)
    assert [t.text for t in s.sla.thresholds] == [
        "send_delay.p99 < 500ms",
        "submit_latency.p99 < 250ms",
    ]


def test_steady_values() -> None:
    s = load(SCENARIOS / "steady.toml")
    assert (s.seed, s.load.model, s.load.rate, s.load.duration) == (7, "poisson", 300.0, 300.0)
    assert s.message.size == 4096
    assert s.fakemta.processing_delay.kind == "lognormal"
    assert [t.stat for t in s.sla.thresholds] == ["p99", "p99.9", "p99"]


def test_scenario_is_frozen() -> None:
    s = from_dict({"name": "x"}, "f")
    with pytest.raises(ValidationError):
        s.seed = 2  # type: ignore[misc]


def test_defaults() -> None:
    s = from_dict({"name": "x"}, "f")
    assert s.system.kind == "fakemta" and s.allow_remote is False
    assert s.load.model == "constant" and s.load.rate == 100.0
    assert s.message.size == 2048 and s.sla.profile == "exmail"
    assert s.sla.thresholds == ()


# -- errors name the field and say why --------------------------------------------------------


def test_error_line_format() -> None:
    with pytest.raises(ScenarioError) as info:
        from_dict({"name": "x", "bogus": 1, "load": {"rate": -5}}, "dir/s.toml")
    assert sorted(info.value.lines()) == [
        "dir/s.toml: bogus: unknown field",
        "dir/s.toml: load.rate: must be >= 0.001 (got -5)",
    ]


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ({"bogus": 1}, "bogus", "unknown field"),
        ({"load": {"ratee": 5}}, "load.ratee", "unknown field"),
        ({"name": None}, "name", ""),
        ({"load": {"rate": -5}}, "load.rate", "must be >= 0.001 (got -5)"),
        ({"load": {"rate": 0}}, "load.rate", "(got 0)"),
        ({"load": {"rate": -0.1}}, "load.rate", "(got -0.1)"),
        ({"load": {"duration": "ten"}}, "load.duration", "'ten' is not a duration"),
        ({"load": {"duration": 10}}, "load.duration", "10 is not a duration"),
        ({"load": {"model": "steps"}}, "load", "steps"),
        ({"message": {"size": "2 parsecs"}}, "message.size", "'2 parsecs'"),
        ({"message": {"recipients": 0}}, "message.recipients", ">= 1"),
        ({"sla": {"profile": "gold"}}, "sla.profile", "gold"),
        ({"postoffice": {"listen": "127.0.0.1"}}, "postoffice.listen", "'127.0.0.1'"),
        ({"postoffice": {"listen": ":25"}}, "postoffice.listen", "':25'"),
        ({"postoffice": {"listen": "h:70000"}}, "postoffice.listen", "'h:70000'"),
        ({"postoffice": {"listen": 25}}, "postoffice.listen", "25"),
    ],
)
def test_field_errors(data: dict[str, Any], field: str, says: str) -> None:
    got_field, why = only_problem({"name": "x", **data})
    assert got_field == field
    assert says in why


def test_missing_name() -> None:
    assert only_problem({"seed": 1})[0] == "name"


@pytest.mark.parametrize("text", ["gauss(1s)", "uniform(50ms, 5ms)", "lognormal(1s)", "soon"])
def test_bad_delay(text: str) -> None:
    field, why = only_problem({"name": "x", "fakemta": {"processing_delay": text}})
    assert field == "fakemta.processing_delay"
    assert repr(text) in why


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("nope", "'nope'"),
        ("send_delay.p99 < soon", "'soon'"),
        ("bogus_metric.p99 < 1s", "'bogus_metric'"),
        ("send_delay.p0 < 1s", "'p0'"),
    ],
)
def test_bad_threshold_quotes_input(text: str, quoted: str) -> None:
    data = {"name": "x", "sla": {"thresholds": ["send_delay.p99 < 1s", text]}}
    field, why = only_problem(data)
    assert field == "sla.thresholds[1]"
    assert repr(text) in why and quoted in why


def test_step_rate_error_has_index() -> None:
    data = {
        "name": "x",
        "load": {
            "model": "steps",
            "steps": [{"rate": 1, "duration": "1s"}, {"rate": 0, "duration": "1s"}],
        },
    }
    assert only_problem(data)[0] == "load.steps[1].rate"


def test_negative_size_is_refused() -> None:
    assert only_problem({"name": "x", "message": {"size": -5}})[0] == "message.size"


# -- system.kind = "smtp" and loopback-only --------------------------------------------------


def test_smtp_system_valid() -> None:
    s = from_dict(SMTP_OK, "f")
    assert s.system.submit == ("127.0.0.1", 2525)
    assert s.postoffice.listen == ("127.0.0.1", 2526)


def test_smtp_needs_submit() -> None:
    data = {**SMTP_OK, "system": {"kind": "smtp"}}
    field, why = only_problem(data)
    assert field == "system.submit" and "required" in why


def test_smtp_needs_fixed_postoffice_port() -> None:
    data = {**SMTP_OK, "postoffice": {"listen": "127.0.0.1:0"}}
    field, why = only_problem(data)
    assert field == "postoffice.listen" and "fixed port" in why


@pytest.mark.parametrize(
    ("section", "key", "addr"),
    [
        ("system", "submit", "10.0.0.1:25"),
        ("system", "inbound", "mail.example.com:25"),
        ("postoffice", "listen", "0.0.0.0:2526"),
        ("fakemta", "listen", "192.168.1.1:0"),
    ],
)
def test_remote_addresses_refused_unless_allowed(section: str, key: str, addr: str) -> None:
    data: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in SMTP_OK.items()}
    data.setdefault(section, {})[key] = addr
    field, why = only_problem(data)
    assert field == f"{section}.{key}"
    assert addr.rpartition(":")[0] in why and "allow_remote" in why
    s = from_dict({**data, "allow_remote": True}, "f")
    assert getattr(getattr(s, section), key)[0] == addr.rpartition(":")[0]


@pytest.mark.parametrize("addr", ["localhost:25", "127.0.0.2:25", "[::1]:25"])
def test_loopback_forms_accepted(addr: str) -> None:
    s = from_dict({**SMTP_OK, "system": {"kind": "smtp", "submit": addr}}, "f")
    assert s.system.submit is not None and s.system.submit[1] == 25


def test_ipv6_address_dump_reparses() -> None:
    s = from_dict({**SMTP_OK, "system": {"kind": "smtp", "submit": "[::1]:25"}}, "f")
    assert s.system.submit == ("::1", 25)
    assert s.as_run()["system"]["submit"] == "[::1]:25"
    assert from_dict(s.as_run(), "dump") == s


# -- as_run round trip -----------------------------------------------------------------------


def test_full_scenario_round_trips() -> None:
    data = {
        **SMTP_OK,
        "seed": 42,
        "load": {
            "model": "steps",
            "steps": [{"rate": 10, "duration": "5s"}, {"rate": 50.5, "duration": "1m"}],
            "max_messages": 1000,
            "late_after": "250ms",
        },
        "fakemta": {"processing_delay": "exp(20ms)"},
        "message": {"size": "1MiB", "recipients": 3, "users": 7},
        "sla": {"profile": "none", "thresholds": ["send_delay.count >= 10"]},
    }
    s = from_dict(data, "f")
    dumped = s.as_run()
    assert dumped["message"]["size"] == "1MiB"
    assert dumped["load"]["steps"][1] == {"rate": 50.5, "duration": "1m"}
    assert dumped["sla"]["thresholds"] == ["send_delay.count >= 10"]
    assert from_dict(dumped, "dump") == s


@given(
    seconds=st.integers(1, 1000),
    rate=st.floats(0.001, 1_000_000, allow_nan=False),
    size=st.integers(1, 50 * 1024 * 1024),
)
def test_as_run_round_trip_property(seconds: int, rate: float, size: int) -> None:
    s = from_dict(
        {"name": "p", "load": {"rate": rate, "duration": f"{seconds}s"}, "message": {"size": size}},
        "f",
    )
    assert from_dict(s.as_run(), "dump") == s


def test_as_run_round_trip_fractional_seconds() -> None:
    s = from_dict({"name": "x", "load": {"duration": "2.3s"}}, "f")
    assert from_dict(s.as_run(), "dump") == s


# -- overrides --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("load.rate=500", ["load", "rate"], 500),
        ("load.rate = 2.5", ["load", "rate"], 2.5),
        ("load.duration=20s", ["load", "duration"], "20s"),
        ('load.duration="20s"', ["load", "duration"], "20s"),
        ("allow_remote=true", ["allow_remote"], True),
        ("sla.thresholds=['send_delay.p99 < 1s']", ["sla", "thresholds"], ["send_delay.p99 < 1s"]),
        ("name=a=b", ["name"], "a=b"),
    ],
)
def test_parse_override(text: str, path: list[str], value: Any) -> None:
    assert parse_override(text) == (path, value)


@pytest.mark.parametrize("text", ["load.rate", "=5", "load..rate=5", ".rate=5", "load.=5"])
def test_parse_override_rejects(text: str) -> None:
    with pytest.raises(ScenarioError) as info:
        parse_override(text)
    assert info.value.source == "--set"
    assert repr(text) in info.value.lines()[0]


def test_apply_overrides_sets_nested_without_mutating() -> None:
    data = {"name": "x", "load": {"rate": 1}}
    out = apply_overrides(data, ["load.rate=500", "message.size=4KiB", "seed=9"])
    assert out == {"name": "x", "seed": 9, "load": {"rate": 500}, "message": {"size": "4KiB"}}
    assert data == {"name": "x", "load": {"rate": 1}}


def test_apply_overrides_later_wins() -> None:
    assert apply_overrides({}, ["seed=1", "seed=2"]) == {"seed": 2}


def test_apply_overrides_into_non_table() -> None:
    with pytest.raises(ScenarioError) as info:
        apply_overrides({"load": {"rate": 1}}, ["load.rate.x=1"])
    assert info.value.problems[0][0] == "load.rate"


def test_overridden_value_is_validated(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\n[load]\nrate = 5\n')
    assert load(p, ["load.rate=500"]).load.rate == 500.0
    with pytest.raises(ScenarioError) as info:
        load(p, ["load.rate=-1"])
    line = info.value.lines()[0]
    assert line.startswith(f"{p} (with --set load.rate=-1): load.rate: ")


# -- load -------------------------------------------------------------------------------------


def test_load_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "nope.toml"
    with pytest.raises(ScenarioError) as info:
        load(p)
    assert info.value.lines()[0].startswith(f"{p}: cannot read")


def test_load_bad_toml(tmp_path: Path) -> None:
    p = tmp_path / "bad.toml"
    p.write_text("name = \n")
    with pytest.raises(ScenarioError) as info:
        load(p)
    assert info.value.lines()[0].startswith(f"{p}: not valid TOML")


def test_load_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "bin.toml"
    p.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ScenarioError) as info:
        load(p)
    assert info.value.lines() == [f"{p}: not UTF-8 text"]


def test_load_error_names_file_and_field(tmp_path: Path) -> None:
    p = tmp_path / "s.toml"
    p.write_text('name = "x"\n[load]\nduration = "ten"\n')
    with pytest.raises(ScenarioError) as info:
        load(p)
    assert info.value.lines()[0].startswith(f"{p}: load.duration: 'ten'")


def test_depth_needs_the_pipelined_client() -> None:
    # aiosmtplib would interleave two messages' commands on one session
    field, why = only_problem({"name": "x", "load": {"depth": 2, "client": "aiosmtplib"}})
    assert field == "load.client"
    assert "load.depth 2" in why and '"pipelined"' in why
    assert from_dict({"name": "x", "load": {"depth": 1, "client": "aiosmtplib"}}, "f").load
    assert from_dict({"name": "x", "load": {"depth": 4}}, "f").load.depth == 4
