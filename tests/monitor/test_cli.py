from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli.main import main
from bench.config.scenario import ScenarioError, load
from bench.monitor.probe import direction_of

BASE = (
    'name = "m"\n[system]\nkind = "smtp"\nsubmit = "{submit}"\n'
    '[postoffice]\nlisten = "127.0.0.1:9"\n[mailbox]\nmaildir = "{tmp}"\n[monitor]\n{extra}\n'
)


@pytest.mark.parametrize(
    ("submit", "extra", "field"),
    [
        ("192.0.2.1:25", "", "allow_remote"),  # a target off loopback
        ("127.0.0.1:25", 'listen = "192.0.2.1:9469"', "monitor.listen"),
        ("127.0.0.1:25", 'timezone = "Mars/Olympus"', "monitor.timezone"),
        ("127.0.0.1:25", "rate = 100000", "monitor.rate"),
    ],
)
def test_refusals_exit_2(tmp_path: Path, submit: str, extra: str, field: str) -> None:
    sc = tmp_path / "m.toml"
    sc.write_text(BASE.format(submit=submit, tmp=tmp_path, extra=extra))
    r = CliRunner().invoke(main, ["monitor", str(sc)])
    assert r.exit_code == 2, r.output
    assert field in r.output and "Traceback" not in r.output


def test_fakemta_kind_refused(tmp_path: Path) -> None:
    sc = tmp_path / "m.toml"
    sc.write_text('name = "m"\n')
    r = CliRunner().invoke(main, ["monitor", str(sc)])
    assert r.exit_code == 2 and "system.kind" in r.output


def _write(tmp: Path, text: str) -> Path:
    sc = tmp / "m.toml"
    sc.write_text(text)
    return sc


MONITOR_ONLY = (
    'name = "m"\n[system]\nkind = "smtp"\nsubmit = "127.0.0.1:1"\n'
    '[mailbox]\nmaildir = "{tmp}"\n{extra}'
)


def test_a_monitor_needs_no_post_office_but_a_run_does(tmp_path: Path) -> None:
    sc = _write(tmp_path, MONITOR_ONLY.format(tmp=tmp_path, extra=""))
    assert load(sc, purpose="monitor").postoffice.listen[1] == 0
    with pytest.raises(ScenarioError, match=r"postoffice\.listen"):
        load(sc)
    r = CliRunner().invoke(main, ["validate", str(sc)])
    assert r.exit_code == 2 and "postoffice.listen" in r.output


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('[load]\ndirection = "receive"\n', "system.inbound"),  # inbound probes need it
        ('[system.auth]\nuser_env = "MAILSLA_T_UNSET_U"\n', "MAILSLA_T_UNSET_U"),
    ],
)
def test_monitor_refuses_what_a_direction_lacks(tmp_path: Path, extra: str, field: str) -> None:
    # [system.auth] after [mailbox] is still the system's table in TOML
    sc = _write(tmp_path, MONITOR_ONLY.format(tmp=tmp_path, extra=extra))
    r = CliRunner().invoke(main, ["monitor", str(sc)], env={"MAILSLA_T_UNSET_U": ""})
    assert r.exit_code == 2, r.output
    assert field in r.output and "Traceback" not in r.output


def test_both_directions_are_spread_evenly_and_resume_the_same() -> None:
    ds = [direction_of(n, "both", 0.25) for n in range(400)]
    assert ds.count("receive") == 100
    assert all(ds[i : i + 4].count("receive") == 1 for i in range(0, 400, 4))
    assert {direction_of(n, "send", 0.25) for n in range(10)} == {"send"}
    assert {direction_of(n, "receive", 0.25) for n in range(10)} == {"receive"}
