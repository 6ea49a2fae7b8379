"""`mailsla run scenarios/filters-junk.toml` against `mailsla postfix --filters --spam-action
junk`: real Postfix, real rspamd tagging spam (its "add header" GTUBE), real Dovecot LMTP whose
Sieve rule files tagged mail into Junk, real ClamAV rejecting EICAR. The Junk folder is watched
in the Maildirs and over IMAP; what is found there is booked as tagged."""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, free_port, need_binary
from tests.e2e.test_run import MAILSLA, ROOT, assert_accounted, mailsla, result

pytestmark = [pytest.mark.realmta, pytest.mark.slow]
SCENARIO = ROOT / "scenarios" / "filters-junk.toml"
LMTP = "/usr/lib/dovecot/lmtp"


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, Any]]:
    """`mailsla postfix --filters --spam-action junk` on free ports, as a user starts it."""
    for name in ("postfix", "rspamd", "clamd", "dovecot", "sievec"):
        need_binary(name)
    if not Path(LMTP).exists():  # Dovecot's LMTP server is a package of its own
        (pytest.fail if IN_CI else pytest.skip)(f"{LMTP} is not installed (dovecot-lmtpd)")
    if os.geteuid() != 0:
        pytest.skip("throwaway Postfix, rspamd and Dovecot need root")
    port, po, imap = free_port(), free_port(), free_port()
    base = Path(tempfile.gettempdir()) / f"mailsla-e2e-junk-{port}"
    args = ["--port", str(port), "--relay-to", f"127.0.0.1:{po}", "--dir", str(base)]
    args += ["--imap-port", str(imap), "--users", "100"]
    proc = subprocess.Popen(
        [*MAILSLA, "postfix", "--filters", "--spam-action", "junk", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = {}
        for _ in range(8):
            line = proc.stdout.readline()
            if line.startswith("{"):
                info = json.loads(line)
                break
        assert info, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        assert info["filters"]["spam_action"] == "junk" and info["imap"] == f"127.0.0.1:{imap}"
        yield info
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not base.exists() and not Path(f"{base}-filters").exists()


def junk_run(tmp: Path, stack: dict[str, Any], *sets: str) -> dict[str, Any]:
    out = tmp / "out"
    overrides = [
        f'system.inbound="{stack["inbound"]}"',
        f'mailbox.maildir="{stack["maildir"]}"',
        'load.duration="2s"',
        'load.drain="15s"',
        *sets,
    ]
    p = mailsla(
        "run",
        str(SCENARIO),
        "--no-live",
        "--out",
        str(out),
        *[a for s in overrides for a in ("--set", s)],
        env={"MAILSLA_IMAP_PASSWORD": "mailsla"},
    )
    # Far too little ham to show "misjudged <= 0.01 %": the verdict is "not shown", exit 1.
    assert p.returncode == 1, p.stdout[-3000:] + p.stderr
    doc = result(out)
    assert_accounted(doc)
    return doc


def check_fates(doc: dict[str, Any]) -> tuple[int, int]:
    """Spam caught (filed in Junk), ham clean or misjudged (reported, never assumed zero),
    viruses rejected by clamd: each message exactly one fate. Returns (spam, ham misjudged)."""
    classes = doc["filters"]["classes"]
    assert sum(c["sent"] for c in classes.values()) == doc["counts"]["sent"] == 100
    spam, ham, virus = classes["spam"], classes["ham"], classes["virus"]
    assert spam["sent"] >= 3 and virus["sent"] >= 3
    assert spam["fates"] == {"delivered_tagged": spam["sent"]}
    assert virus["fates"] == {"rejected": virus["sent"]}
    assert set(ham["fates"]) <= {"delivered_clean", "delivered_tagged"}
    assert sum(ham["fates"].values()) == ham["sent"]
    rates = doc["filters"]["rates"]
    assert rates["spam_caught"]["hits"] == rates["spam_caught"]["n"] == spam["sent"]
    misjudged = ham["fates"].get("delivered_tagged", 0)
    assert (
        rates["ham_misjudged"]["hits"] == misjudged and rates["ham_misjudged"]["n"] == ham["sent"]
    )
    assert rates["ham_misjudged"]["verdict"] == "not_shown"
    rej = {(r["class"], r["stage"], r["code"]): r["count"] for r in doc["filters"]["rejections"]}
    assert rej == {("virus", "dot", 554): virus["sent"]}
    # Junk arrivals are timed like INBOX ones
    lat = doc["filters"]["latency"]["receive_delay"]
    assert lat["spam"]["count"] == spam["sent"]
    return spam["sent"], misjudged


def test_spam_is_filed_into_junk_and_seen_in_the_maildirs(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    doc = junk_run(tmp_path, stack, 'mailbox.dispose="keep"')
    spam, misjudged = check_fates(doc)
    assert doc["receive"]["watch"] == "maildir"
    # What mailsla booked as tagged is what Dovecot's Sieve rule filed: the Junk folders hold
    # exactly those copies, each marked by rspamd.
    root = Path(stack["maildir"])
    junk = [p for p in root.glob("user*/.Junk/*/*") if p.parent.name in ("new", "cur")]
    assert len(junk) == spam + misjudged
    for p in junk:
        msg = email.message_from_bytes(p.read_bytes(), policy=email.policy.compat32)
        assert msg["X-Spam"] == "Yes", p
    inbox = [p for p in root.glob("user*/*/*") if p.parent.name in ("new", "cur")]
    assert len(inbox) == doc["filters"]["classes"]["ham"]["sent"] - misjudged
    for p in [*junk, *inbox]:
        p.unlink()  # the next test starts from empty mailboxes


def test_spam_in_junk_is_seen_over_imap(stack: dict[str, Any], tmp_path: Path) -> None:
    doc = junk_run(
        tmp_path,
        stack,
        'mailbox.watch="imap"',
        f'mailbox.imap="{stack["imap"]}"',
        'mailbox.dispose="delete"',
    )
    check_fates(doc)
    assert doc["receive"]["watch"] == "imap"
