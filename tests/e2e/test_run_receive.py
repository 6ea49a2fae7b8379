"""End to end: inbound traffic into the fake MTA's Maildirs, timed by the mailbox watchers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import need_binary
from tests.e2e.test_run import assert_accounted, mailsla, result, run_scenario, scenario

pytestmark = pytest.mark.slow

RECEIVE = """
name = "r"
seed = 5
[fakemta]
delivery_delay = "const(300ms)"
[load]
direction = "receive"
rate = 100
duration = "3s"
drain = "5s"
sessions = 4
[message]
size = "1KiB"
users = 10
"""


def _run(tmp_path: Path, text: str, *sets: str) -> tuple[int, dict[str, object], str]:
    p, out = run_scenario(tmp_path, text, *sets)
    return p.returncode, result(out), p.stderr


def test_receive_delay_const_300ms_via_maildir(tmp_path: Path) -> None:
    code, doc, err = _run(tmp_path, RECEIVE)
    assert code == 0, err
    rd = doc["metrics"]["receive_delay"]  # type: ignore[index]
    assert rd["count"] == 300
    assert abs(rd["mean_s"] - 0.300) <= 0.300 * 0.03, rd["mean_s"]
    # The fake MTA starts its hold before the client has read the 250, and on a loaded machine
    # that read can lag by ten milliseconds and more (CI saw 289 ms): the median is held to
    # the delay, and no message may come out unheld (that shows as a few ms).
    assert rd["percentiles_s"]["50"] >= 0.295, rd
    assert rd["min_s"] >= 0.25, rd
    assert doc["receive"]["mode"] == "inotify"  # type: ignore[index]
    assert doc["receive"]["stats"]["seen"] == 300  # type: ignore[index]
    checks = {c["name"] for c in doc["sla"]["checks"]}  # type: ignore[index]
    assert {"receive_delay.mean", "receive_delay.max"} <= checks
    assert "send_delay.mean" not in checks
    assert doc["directions"]["receive"]["identity_holds"] is True  # type: ignore[index]
    assert_accounted(doc)


def test_both_directions_share_one_schedule(tmp_path: Path) -> None:
    text = RECEIVE.replace('direction = "receive"', 'direction = "both"\nreceive_share = 0.25')
    code, doc, err = _run(tmp_path, text)
    assert code == 0, err
    lanes = doc["directions"]  # type: ignore[index]
    assert lanes["send"]["counts"]["delivered"] == 225
    assert lanes["receive"]["counts"]["delivered"] == 75
    assert doc["counts"]["delivered"] == 300  # type: ignore[index]
    m = doc["metrics"]  # type: ignore[index]
    assert m["send_delay"]["count"] == 225 and m["receive_delay"]["count"] == 75
    assert m["inbound.submit_latency"]["count"] == 75
    checks = {c["name"] for c in doc["sla"]["checks"]}  # type: ignore[index]
    assert {"send_delay.max", "receive_delay.max"} <= checks
    assert_accounted(doc)


def test_undelivered_inbound_mail_fails_the_receive_ceiling(tmp_path: Path) -> None:
    # Delivery takes longer than the drain: the mail is undelivered and counts as over 1 h.
    text = RECEIVE.replace("const(300ms)", "const(20s)").replace('drain = "5s"', 'drain = "1s"')
    code, doc, err = _run(tmp_path, text, 'load.duration="1s"')
    assert code == 1, err
    assert doc["counts"]["undelivered"] == 100  # type: ignore[index]
    failed = {c["name"]: c for c in doc["sla"]["checks"] if not c["pass"]}  # type: ignore[index]
    assert set(failed) == {"receive_delay.mean", "receive_delay.max"}  # no data; 100 lost
    assert "100 message(s) undelivered" in failed["receive_delay.max"]["note"]
    assert_accounted(doc)


@pytest.mark.realmta
def test_receive_delay_via_imap_on_a_throwaway_dovecot(tmp_path: Path) -> None:
    need_binary("dovecot")
    text = RECEIVE + '[mailbox]\nwatch = "imap"\npoll_interval = "50ms"\ndispose = "delete"\n'
    code, doc, err = _run(tmp_path, text)
    assert code == 0, err
    rd = doc["metrics"]["receive_delay"]  # type: ignore[index]
    assert rd["count"] == 300
    # Polling sees a message up to one interval (plus a round trip) after it landed.
    assert rd["min_s"] >= 0.29 and rd["mean_s"] <= 0.300 + 0.050 + 0.05, rd
    assert doc["receive"]["resolution_s"] == pytest.approx(0.05)  # type: ignore[index]
    assert doc["receive"]["dovecot"] is True  # type: ignore[index]
    assert_accounted(doc)


def test_inbound_needs_one_generator_process(tmp_path: Path) -> None:
    p = mailsla("validate", str(scenario(tmp_path, RECEIVE)), "--set", "load.workers=2")
    assert p.returncode == 2
    assert "load.workers" in p.stderr and "Traceback" not in p.stderr
