"""The Junk folder: found by LIST (SPECIAL-USE ``\\Junk``, a name, an alias) and watched beside
INBOX, over IMAP on a real, throwaway Dovecot and in Maildir++ ``.Junk/`` folders; what is there
is marked tagged, what is in INBOX is not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.core.fates import TAGGED
from bench.observe.imap_watch import ImapWatcher, junk_folder
from bench.observe.maildir_watch import MaildirWatcher, make_maildir
from tests.observe.test_imap_watch import PASSWORD, dovecot, mailboxes  # noqa: F401
from tests.observe.test_maildir_watch import Visible, deliver, message


def test_junk_folder_prefers_special_use_then_name_then_alias() -> None:
    ok = b"A1 OK List completed"
    special = [
        b'(\\HasNoChildren) "." INBOX',
        b'(\\HasNoChildren \\Junk) "." "Bulk Mail"',
        b'(\\HasNoChildren) "." Junk',
        ok,
    ]
    assert junk_folder(special, "Junk") == "Bulk Mail"
    named = [b'(\\HasNoChildren) "/" INBOX', b'(\\HasNoChildren) "/" "My \\"Junk\\""', ok]
    assert junk_folder(named, 'My "Junk"') == 'My "Junk"'
    alias = [b'(\\HasNoChildren) "." INBOX', b'(\\HasNoChildren) "." spam', ok]
    assert junk_folder(alias, "Junk") == "spam"
    assert junk_folder([b'(\\HasNoChildren) "." INBOX', ok], "Junk") is None
    assert junk_folder([b'(\\HasNoChildren) "." INBOX', ok], "inbox") is None  # never INBOX


@pytest.mark.realmta
async def test_imap_watcher_reads_the_junk_folder_as_tagged(dovecot) -> None:  # noqa: F811
    """Dovecot marks Junk ``\\Junk`` (the harness's namespace): the Junk watcher finds it by
    LIST, reports what is filed there as tagged, and never what is in INBOX."""
    mds = mailboxes(dovecot, "jan", "jon")
    for md in mds.values():
        make_maildir(md / ".Junk", owner=(dovecot.uid, dovecot.gid), mode=0o700, root=md.parent)
    inbox, junk = Visible(), Visible()
    args = ("127.0.0.1", dovecot.port, list(mds), PASSWORD)
    wi = ImapWatcher(*args, inbox.sink, interval=0.02, read_marks=True)
    wj = ImapWatcher(*args, junk.sink, interval=0.02, read_marks=True, junk=True, mailbox="x")
    await wi.start()
    await wj.start()
    deliver(mds["jan"], "1.M1.host", message(1))
    deliver(mds["jan"] / ".Junk", "2.M2.host", message(2))
    deliver(mds["jon"] / ".Junk", "3.M3.host", message(3))
    await junk.wait(2)
    await inbox.wait(1)
    await wj.stop()
    await wi.stop()
    assert {i.id: i.marks for i, _ in junk.items if i} == {2: TAGGED, 3: TAGGED}
    assert {i.id: i.marks for i, _ in inbox.items if i} == {1: 0}
    assert wj.stats.errors == 0 and wi.stats.errors == 0


@pytest.mark.realmta
async def test_a_user_without_a_junk_folder_is_looked_for_again(dovecot) -> None:  # noqa: F811
    """No Junk folder at login: nothing selected, no error; once one exists (here the one named,
    "Spam") it is found at the next poll and watched."""
    (md,) = mailboxes(dovecot, "kim").values()
    seen = Visible()
    w = ImapWatcher("127.0.0.1", dovecot.port, ["kim"], PASSWORD, seen.sink, interval=0.02,
                    read_marks=True, junk=True, mailbox="Spam")  # fmt: skip
    await w.start()
    assert w._sessions[0].folder is None
    make_maildir(md / ".Spam", owner=(dovecot.uid, dovecot.gid), mode=0o700, root=md.parent)
    deliver(md / ".Spam", "4.M4.host", message(4))
    await seen.wait(1)
    await w.stop()
    assert w._sessions[0].folder == "Spam"
    assert [(i.id, i.marks) for i, _ in seen.items if i] == [(4, TAGGED)]
    assert w.stats.errors == 0, w.last_error


async def test_maildir_watcher_reads_the_junk_folder_as_tagged(tmp_path: Path) -> None:
    box = tmp_path / "u0"
    make_maildir(box)
    make_maildir(box / ".Junk", root=tmp_path)
    seen = Visible()
    w = MaildirWatcher([box], seen.sink, read_marks=True, junk=[box / ".Junk"])
    await w.start()
    deliver(box, "1.M1.host", message(1))
    deliver(box / ".Junk", "2.M2.host", message(2))
    await seen.wait(2)
    await w.stop()
    assert {i.id: i.marks for i, _ in seen.items if i} == {1: 0, 2: TAGGED}
