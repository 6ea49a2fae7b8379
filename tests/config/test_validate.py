"""``mailsla validate`` as a dry run: what ``run`` would refuse exits 2 naming file, field and
why; the resolved plan (text or ``--json``) shows the messages expected and every check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bench.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
NO_ENV = ("MAILSLA_SMTP_USER", "MAILSLA_SMTP_PASSWORD", "MAILSLA_IMAP_PASSWORD")


def validate(*args: str, env: dict[str, str] | None = None) -> Result:
    clean: dict[str, str | None] = dict.fromkeys(NO_ENV)
    return CliRunner().invoke(main, ["validate", *args], env={**clean, **(env or {})})


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def plan_of(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = validate(*args, "--json", env=env)
    doc: dict[str, Any] = json.loads(r.stdout)
    return doc


# -- replayed as the issue wrote them, through a real process ---------------------------------


def test_shortened_outage_scenario_exits_2_naming_the_field() -> None:
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "validate",
            "scenarios/outage.toml",
            "--set",
            'load.duration="5s"',
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert p.returncode == 2, p.stdout + p.stderr
    assert "Traceback" not in p.stderr and "ok:" not in p.stdout
    first = p.stderr.strip().splitlines()[0]
    assert first.startswith('error: scenarios/outage.toml (with --set load.duration="5s"): ')
    assert ": fakemta.outages[0].at: 1m is not before the end of sending" in first


def test_broken_toml_in_set_exits_2_with_a_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if k not in NO_ENV}
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "validate",
            "scenarios/quickstart.toml",
            "--set",
            'fakemta.faults=[{stage=dot, kind="delay", probability=1.0, duration="const(10s)"}]',
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env=env,
    )
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "tuple" not in p.stderr
    assert "fakemta.faults: " in p.stderr and "is not valid TOML: Invalid value" in p.stderr


# -- the environment, as run reads it ---------------------------------------------------------


def test_auth_with_its_variables_unset_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "a"\n[system.auth]\npassword_env = "MAILSLA_TEST_NOPE"\n')
    r = validate(str(path), env={"MAILSLA_SMTP_USER": "u"})
    assert r.exit_code == 2
    assert r.stderr.startswith(f"error: {path}: system.auth.password_env: environment variable ")
    assert "MAILSLA_TEST_NOPE is not set" in r.stderr
    assert "ok:" not in r.stdout and "checks" in r.stdout  # the plan, then the refusal
    r = validate(str(path), env={"MAILSLA_SMTP_USER": "u", "MAILSLA_TEST_NOPE": "p"})
    assert r.exit_code == 0 and "ok:" in r.stdout
    assert "AUTH plain as $MAILSLA_SMTP_USER / $MAILSLA_TEST_NOPE" in r.stdout


SMTP_RECEIVE = """
name = "r"
[system]
kind = "smtp"
inbound = "127.0.0.1:2525"
[load]
direction = "receive"
workers = 1
[message]
users = 3
[mailbox]
"""


def test_imap_password_unset_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, SMTP_RECEIVE + 'watch = "imap"\nimap = "127.0.0.1:1143"\n')
    r = validate(str(path))
    assert r.exit_code == 2 and "mailbox.imap_password_env: " in r.stderr
    assert "MAILSLA_IMAP_PASSWORD is not set" in r.stderr
    assert validate(str(path), env={"MAILSLA_IMAP_PASSWORD": "x"}).exit_code == 0


def test_a_real_systems_maildir_folder_must_exist(tmp_path: Path) -> None:
    root = tmp_path / "mail"
    path = write(tmp_path, SMTP_RECEIVE + f'maildir = "{root}"\n')
    r = validate(str(path))
    assert r.exit_code == 2
    assert f"mailbox.maildir: {root} does not exist" in r.stderr
    root.write_text("")
    assert f"{root} is not a folder" in validate(str(path)).stderr
    root.unlink()
    root.mkdir()
    r = validate(str(path))
    assert r.exit_code == 0, r.stderr  # run makes the users' Maildirs, owned as the folder
    assert f"Maildirs in {root}" in r.stdout


def test_maildirs_mailsla_could_not_create(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "mail"
    (root / "user0" / "new").mkdir(parents=True)
    path = write(tmp_path, SMTP_RECEIVE + f'maildir = "{root}"\n')
    # another user (not root, not the folder's owner) could not make them owned as it is
    monkeypatch.setattr("bench.cli.validate.os.geteuid", lambda: root.stat().st_uid + 1)
    r = validate(str(path))
    assert r.exit_code == 2
    assert "mailbox.maildir: 2 of the 3 users' Maildirs are missing" in r.stderr
    for u in ("user1", "user2"):
        (root / u / "new").mkdir(parents=True)
    assert validate(str(path)).exit_code == 0  # nothing left to create


def test_a_missing_ca_file_is_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    path = write(tmp_path, f'name = "t"\n[system]\ntls = "required"\nca_file = "{ca}"\n')
    r = validate(str(path))
    assert r.exit_code == 2 and f"system.ca_file: {ca} is not a file" in r.stderr
    ca.write_text("")
    assert validate(str(path)).exit_code == 0


# -- the plan ---------------------------------------------------------------------------------


def test_the_plan_in_text() -> None:
    r = validate(str(SCENARIOS / "quickstart.toml"))
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "4000 expected" in out  # 200/s for 20s
    assert "sending 20s + drain up to 5s = at most 25s" in out
    assert "submit 127.0.0.1 on a free port" in out and "@remote.test" in out
    for check in (
        "send_delay.mean <= 1m  (exmail)",
        "send_delay.max <= 1h  (exmail; undelivered mail counts as over the limit)",
        "availability.no_fault_rate >= 99.9%",
        "availability.connectivity_rate >= 99.9%",
        "send_delay.p99 < 500ms  (threshold)",
        "submit_latency.p99 < 250ms  (threshold)",
    ):
        assert check in out, out
    assert "receive_delay" not in out  # no receive lane
    assert out.splitlines()[-1].startswith("ok: ")


def test_the_plan_as_json() -> None:
    plan = plan_of(str(SCENARIOS / "both.toml"), "--set", "load.duration='10s'")
    assert plan["schema"] == "mailsla.plan/1" and plan["name"] == "both"
    assert plan["overrides"] == ["load.duration='10s'"]
    e = plan["expected_messages"]
    assert e["exact"] and e["total"] == 2000 and e["send"] + e["receive"] == 2000
    assert plan["duration_s"] == {"sending": 10.0, "drain": 5.0, "max": 15.0}
    names = [c["name"] for c in plan["checks"]]
    assert names[:4] == [
        "send_delay.mean",
        "send_delay.max",
        "receive_delay.mean",
        "receive_delay.max",
    ]
    assert plan["refused"] == [] and plan["warnings"] == []


def test_shorthands_as_in_run() -> None:
    plan = plan_of(str(SCENARIOS / "quickstart.toml"), "--rate", "50", "--duration", "4s")
    assert plan["expected_messages"]["total"] == 200
    assert plan["load"]["rate"] == 50.0


def test_windowed_and_abort_on_fail_checks_are_marked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'name = "t"\n[sla]\nprofile = "none"\nthresholds = ["send_delay.p99[5s] < 1s", '
        '{threshold = "send_delay.max < 5s", abort_on_fail = true, grace = "3s"}]\n',
    )
    r = validate(str(path))
    assert "send_delay.p99[5s] < 1s  (threshold; in every 5s window)" in r.stdout
    assert "send_delay.max < 5s  (threshold; abort_on_fail after 3s" in r.stdout
    plan = plan_of(str(path))
    assert [(c["window_s"], c["abort_on_fail"], c["grace_s"]) for c in plan["checks"]] == [
        (5.0, False, 0.0),
        (None, True, 3.0),
    ]


def test_no_checks_at_all_is_said(tmp_path: Path) -> None:
    r = validate(str(write(tmp_path, 'name = "n"\n[sla]\nprofile = "none"\n')))
    assert "checks    none" in r.stdout


def test_closed_and_poisson_models_say_what_they_can(tmp_path: Path) -> None:
    closed = plan_of(str(SCENARIOS / "quickstart.toml"), "--set", 'load.model="closed"')
    assert closed["expected_messages"]["total"] is None
    r = validate(str(SCENARIOS / "steady.toml"))
    assert "about 90000 expected" in r.stdout


def test_an_outage_into_the_drain_is_a_warning_not_a_refusal() -> None:
    r = validate(str(SCENARIOS / "outage.toml"), "--set", 'load.duration="70s"')
    assert r.exit_code == 0
    assert "warning: fakemta.outages[0]: refuse from 1m to 90s" in r.stderr
    assert "outage: refuse at 1m for 30s" in r.stdout
    plan = plan_of(str(SCENARIOS / "outage.toml"), "--set", 'load.duration="70s"')
    assert len(plan["warnings"]) == 1 and plan["fakemta"]["outages"][0]["at_s"] == 60.0


def test_json_keeps_stdout_clean_when_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "a"\n[system.auth]\n')
    r = validate(str(path), "--json")
    assert r.exit_code == 2
    plan = json.loads(r.stdout)
    assert plan["refused"] and plan["refused"][0].startswith("system.auth.user_env: ")
    assert "error:" in r.stderr
