"""The throwaway Dovecot's LMTP and Sieve rule (bench.harness.sieve): mail marked as spam by
a filter is filed into Junk, the rest into INBOX; nothing else about a message changes."""

from __future__ import annotations

import os
import shutil
import smtplib
import tempfile
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from bench.harness.dovecot import ThrowawayDovecot
from bench.harness.sieve import JUNK_SCRIPT, SieveError, write_junk_script
from tests.conftest import IN_CI, free_port, need_binary
from tests.e2e.test_run import mailsla

pytestmark = [pytest.mark.realmta, pytest.mark.slow]
LMTP = "/usr/lib/dovecot/lmtp"


@pytest.fixture
def dovecot() -> Iterator[ThrowawayDovecot]:
    for name in ("dovecot", "sievec"):
        need_binary(name)
    if not Path(LMTP).exists():
        (pytest.fail if IN_CI else pytest.skip)(f"{LMTP} is not installed (dovecot-lmtpd)")
    if os.geteuid() != 0:
        pytest.skip("a throwaway Dovecot needs root")
    # Not under tmp_path: its parents are root's alone, and LMTP writes as the mail's owner.
    top = Path(tempfile.mkdtemp(prefix="mailsla-junk-"))
    top.chmod(0o755)
    root = top / "mail"
    root.mkdir()
    os.chown(root, 65534, 65534)
    dc = ThrowawayDovecot(root, lmtp=True)
    try:
        dc.start()
        yield dc
    finally:
        dc.stop()
        shutil.rmtree(top, ignore_errors=True)


def deliver(dc: ThrowawayDovecot, user: str, headers: dict[str, str]) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@sender.test", f"{user}@local.test", "t"
    for k, v in headers.items():
        msg[k] = v
    msg.set_content("The quarterly figures, as promised.\n")
    with smtplib.LMTP(str(dc.lmtp_socket)) as lmtp:
        assert lmtp.send_message(msg) == {}  # 250 for its one recipient


def files(folder: Path) -> list[Path]:
    return sorted(p for d in ("new", "cur") for p in (folder / d).glob("*"))


@pytest.mark.parametrize(
    ("headers", "junk"),
    [
        ({}, False),
        ({"X-Spam": "Yes"}, True),  # rspamd's mark
        ({"X-Spam-Flag": "YES"}, True),  # SpamAssassin's
        ({"X-Spam": "No"}, False),
        ({"X-Spam-Status": "No, score=0.1"}, False),
    ],
)
def test_sieve_files_what_a_filter_marked_into_junk(
    dovecot: ThrowawayDovecot, headers: dict[str, str], junk: bool
) -> None:
    deliver(dovecot, "user3", headers)
    box = dovecot.mail_root / "user3"
    inbox, junk_box = files(box), files(box / ".Junk")
    assert (len(inbox), len(junk_box)) == ((0, 1) if junk else (1, 0))
    (copy,) = junk_box or inbox
    assert copy.stat().st_uid == 65534  # delivered as the mailbox's owner
    text = copy.read_bytes()
    assert b"The quarterly figures" in text and b"Subject: t" in text
    for k, v in headers.items():
        assert f"{k}: {v}".encode() in text


def test_a_script_that_does_not_compile_is_a_clear_error(tmp_path: Path) -> None:
    need_binary("sievec")
    conf = tmp_path / "dovecot.conf"
    conf.write_text("")
    assert write_junk_script(tmp_path / "ok", conf).read_text() == JUNK_SCRIPT
    assert (tmp_path / "ok" / "junk.svbin").exists()
    broken = 'require ["fileinto"];\nfileinto "Junk"\n'  # no semicolon
    with pytest.raises(SieveError, match="could not compile"):
        write_junk_script(tmp_path / "bad", conf, broken)


def test_junk_without_filters_is_a_usage_error() -> None:
    """Nothing would mark the spam: exit 2 with what to add, before anything starts."""
    if os.geteuid() != 0:
        pytest.skip("mailsla postfix checks for root first")
    p = mailsla("postfix", "--spam-action", "junk", "--port", str(free_port()), timeout=30)
    assert p.returncode == 2 and "add --filters" in p.stderr and "Traceback" not in p.stderr
