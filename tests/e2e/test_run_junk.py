"""Spam filed in a Junk folder, end to end: the fake MTA's ``junk`` action writes caught spam
(and misjudged ham) untagged into each mailbox's Maildir++ ``.Junk/``; a throwaway Dovecot
serves it as the ``\\Junk`` folder over IMAP (or the Maildir watcher reads it), and mailsla
books what it finds there as tagged: spam caught, ham misjudged."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import need_binary
from tests.e2e.test_run import assert_accounted, result, run_scenario

JUNK = """
name = "filters-junk"
seed = 3
[fakemta]
processing_delay = "const(0ms)"
delivery_delay = "const(1ms)"
[fakemta.filter]
spam_detection = 0.9
false_positive = 0.05
spam_action = "junk"
[mailbox]
watch = "{watch}"
poll_interval = "50ms"
dispose = "delete"
[load]
direction = "receive"
rate = 400
duration = "1s"
drain = "3s"
sessions = 4
[message]
mix = {{ ham = 0.5, spam = 0.5 }}
users = 10
"""


def check_junk_run(tmp_path: Path, watch: str) -> dict[str, object]:
    p, out = run_scenario(tmp_path, JUNK.format(watch=watch))
    assert p.returncode in (0, 1), p.stdout[-3000:] + p.stderr
    doc = result(out)
    assert_accounted(doc)  # every message exactly one fate
    f, fm, rcv = doc["filters"], doc["fakemta"], doc["receive"]
    spam, ham = f["classes"]["spam"]["fates"], f["classes"]["ham"]["fates"]
    assert fm["filter_junked"] == fm["filter_spam_caught"] + fm["filter_false_positives"] > 0
    assert fm["filter_false_positives"] > 0  # 5 % of ~200 ham
    # What was filed in Junk (untagged: only the folder says so) is booked as tagged.
    assert spam["delivered_tagged"] == fm["filter_spam_caught"]
    assert ham.get("delivered_tagged", 0) == fm["filter_false_positives"]
    assert "not_delivered" not in spam and "not_delivered" not in ham
    assert spam["delivered_clean"] == fm["filter_spam_seen"] - fm["filter_spam_caught"]
    rates = f["rates"]
    assert rates["spam_caught"]["hits"] == fm["filter_spam_caught"]
    assert rates["ham_misjudged"]["hits"] == fm["filter_false_positives"]
    # Junk arrivals have their receive delay, like INBOX ones.
    lat = f["latency"]["receive_delay"]
    assert lat["spam"]["count"] + lat["ham"]["count"] == doc["counts"]["sent"] == 400
    assert rcv["junk"] == "Junk"
    return rcv


@pytest.mark.realmta
def test_spam_in_the_junk_folder_over_imap_is_caught(tmp_path: Path) -> None:
    need_binary("dovecot")
    rcv = check_junk_run(tmp_path, "imap")
    assert rcv["dovecot"] is True
    junk = rcv["junk_stats"]
    assert isinstance(junk, dict) and junk["seen"] > 0 and junk["errors"] == 0


def test_spam_in_the_maildir_junk_folder_is_caught(tmp_path: Path) -> None:
    check_junk_run(tmp_path, "maildir")
