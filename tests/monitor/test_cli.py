from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.cli.main import main

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
