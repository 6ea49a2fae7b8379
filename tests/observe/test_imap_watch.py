"""ImapWatcher against a real, throwaway Dovecot serving Maildirs written the MDA way."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.core.message import Identity
from bench.harness.dovecot import DovecotError, ThrowawayDovecot
from bench.observe.imap_watch import (
    FETCH_BATCH,
    ImapWatcher,
    WatchError,
    parse_fetch,
    parse_search,
    uid_set,
)
from bench.observe.maildir_watch import make_maildir
from tests.conftest import free_port, need_binary
from tests.observe.test_maildir_watch import Visible, deliver, message

pytestmark = [pytest.mark.realmta]

PASSWORD = "s3cret"


@pytest.fixture(scope="module")
def dovecot() -> Iterator[ThrowawayDovecot]:
    need_binary("dovecot")
    if os.geteuid() != 0:
        pytest.skip("a throwaway Dovecot instance needs root")
    # not under pytest's tmp_path: that is 0700 and the mail's owner (nobody) must get in
    root = Path(tempfile.mkdtemp(prefix="mailsla-imap-test-"))
    root.chmod(0o755)
    os.chown(root, 65534, 65534)
    dc = ThrowawayDovecot(root, password=PASSWORD)
    dc.start()
    yield dc
    dc.stop()
    shutil.rmtree(root, ignore_errors=True)


def mailboxes(dc: ThrowawayDovecot, *users: str) -> dict[str, Path]:
    out = {}
    for u in users:
        out[u] = dc.mail_root / u
        make_maildir(out[u], owner=(dc.uid, dc.gid), mode=0o700)
    return out


def mail_files(md: Path) -> list[str]:
    return os.listdir(md / "new") + os.listdir(md / "cur")


async def test_reports_each_message_once_across_users(dovecot: ThrowawayDovecot) -> None:
    mds = mailboxes(dovecot, "ann", "bob", "cyd")
    deliver(mds["ann"], "0.M0.host", message(0))  # there before the watcher
    seen = Visible()
    w = ImapWatcher("127.0.0.1", dovecot.port, list(mds), PASSWORD, seen.sink, interval=0.02)
    await w.start()
    await seen.wait(1)
    n = 60
    for i in range(1, n):
        deliver(mds[["ann", "bob", "cyd"][i % 3]], f"{i}.M{i}.host", message(i, eol=b"\n"))
    deliver(mds["bob"], "x.M.host", b"From: x@y\r\nSubject: not ours\r\n\r\nbody\r\n")
    await seen.wait(n + 1)
    await w.stop()
    want: dict[int | None, int] = {**dict.fromkeys(range(n), 1), None: 1}
    assert seen.ids == want
    assert {i for i, _ in seen.items} - {None} == {Identity("r1", i) for i in range(n)}
    assert (w.stats.seen, w.stats.foreign, w.stats.errors) == (n + 1, 1, 0)
    assert w.mode == "imap" and w.resolution_s == 0.02
    assert len(mail_files(mds["ann"])) == 20  # kept


async def test_stop_polls_one_last_time(dovecot: ThrowawayDovecot) -> None:
    mds = mailboxes(dovecot, "dan")
    deliver(mds["dan"], "1.M1.host", message(1))
    seen = Visible()
    w = ImapWatcher("127.0.0.1", dovecot.port, ["dan"], PASSWORD, seen.sink, interval=60)
    await w.start()
    await seen.wait(1)  # the first poll is over; the next one is a minute away
    deliver(mds["dan"], "2.M2.host", message(2))
    await w.stop()
    assert seen.ids == {1: 1, 2: 1}


async def test_dispose_delete_expunges(dovecot: ThrowawayDovecot) -> None:
    mds = mailboxes(dovecot, "eve", "fay")
    seen = Visible()
    w = ImapWatcher(
        "127.0.0.1", dovecot.port, list(mds), PASSWORD, seen.sink, interval=0.02, dispose="delete"
    )
    await w.start()
    for i in range(30):
        deliver(mds[["eve", "fay"][i % 2]], f"{i}.M{i}.host", message(i))
    await seen.wait(30)
    await w.stop()
    assert seen.ids == dict.fromkeys(range(30), 1)
    assert mail_files(mds["eve"]) == mail_files(mds["fay"]) == []


async def test_a_burst_is_fetched_in_batches(dovecot: ThrowawayDovecot) -> None:
    mds = mailboxes(dovecot, "hal")
    n = 4 * FETCH_BATCH + 7  # one response for all would overflow aioimaplib's parser
    for i in range(n):
        deliver(mds["hal"], f"{i}.M{i}.host", message(i), fsync=False)
    seen = Visible()
    w = ImapWatcher(
        "127.0.0.1", dovecot.port, ["hal"], PASSWORD, seen.sink, interval=0.02, dispose="delete"
    )
    await w.start()
    await seen.wait(n)
    await w.stop()
    assert seen.ids == dict.fromkeys(range(n), 1)
    assert len({ns for _, ns in seen.items}) == 1  # all revealed by the same NOOP
    assert mail_files(mds["hal"]) == []


async def test_reconnects_after_a_restart(dovecot: ThrowawayDovecot) -> None:
    mds = mailboxes(dovecot, "ivy")
    first = ThrowawayDovecot(dovecot.mail_root, password=PASSWORD)
    first.start()
    second = ThrowawayDovecot(dovecot.mail_root, password=PASSWORD, port=first.port)
    seen = Visible()
    w = ImapWatcher(
        "127.0.0.1", first.port, ["ivy"], PASSWORD, seen.sink, interval=0.02, dispose="delete"
    )
    try:
        await w.start()
        deliver(mds["ivy"], "1.M1.host", message(1))
        await seen.wait(1)
        await asyncio.to_thread(first.stop)
        deliver(mds["ivy"], "2.M2.host", message(2))
        await asyncio.to_thread(second.start)  # a new index: new UIDVALIDITY, UIDs from 1
        await seen.wait(2)
        await w.stop()
    finally:
        first.stop()
        second.stop()
    assert seen.ids == {1: 1, 2: 1}
    assert w.stats.errors >= 1 and w.last_error


async def test_wrong_password(dovecot: ThrowawayDovecot) -> None:
    mailboxes(dovecot, "gus")
    w = ImapWatcher("127.0.0.1", dovecot.port, ["gus"], "wrong", Visible().sink)
    with pytest.raises(WatchError, match="login failed for gus") as e:
        await w.start()
    assert "\n" not in str(e.value)


async def test_wrong_password_fails_on_the_first_user(
    dovecot: ThrowawayDovecot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong password is found with one login, not after every user's (each failed login
    waits out Dovecot's delay: 100 users took 33 s to say so)."""
    users = [f"u{i}" for i in range(20)]
    mailboxes(dovecot, *users)
    w = ImapWatcher("127.0.0.1", dovecot.port, users, "wrong", Visible().sink)
    tried: list[str] = []
    connect = w._connect

    async def spy(s: Any) -> None:
        tried.append(s.user)
        await connect(s)

    monkeypatch.setattr(w, "_connect", spy)
    with pytest.raises(WatchError, match="login failed for u0"):
        await w.start()
    assert tried == ["u0"]


async def test_nothing_listening() -> None:
    w = ImapWatcher("127.0.0.1", free_port(), ["u"], PASSWORD, Visible().sink, timeout=5)
    with pytest.raises(WatchError, match="connection refused") as e:
        await w.start()
    assert "\n" not in str(e.value)


def test_bad_start_shows_dovecot_log(tmp_path: Path) -> None:
    need_binary("dovecot")
    if os.geteuid() != 0:
        pytest.skip("a throwaway Dovecot instance needs root")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        dc = ThrowawayDovecot(tmp_path, port=busy.getsockname()[1])
        with pytest.raises(DovecotError, match="Address already in use"):
            dc.start(timeout=10)
    assert not dc.base.exists()


def test_parse_search_fetch_and_uid_set() -> None:
    assert parse_search([b"3 4 10", b"", b"Search completed (0.001 secs)."]) == [3, 4, 10]
    lines = [
        b"1 FETCH (UID 7 BODY[HEADER.FIELDS (X-MAILSLA-RUN X-MAILSLA-ID)] {4}",
        bytearray(b"a\r\n\r"),
        b")",
        b"2 FETCH (BODY[HEADER.FIELDS (X-MAILSLA-RUN X-MAILSLA-ID)] {2}",
        bytearray(b"\r\n"),
        b" UID 9)",
        b"3 FETCH (FLAGS (\\Seen) UID 10)",  # an unsolicited flag update: not a message
        b"Fetch completed.",
    ]
    assert parse_fetch(lines) == [(7, b"a\r\n\r"), (9, b"\r\n")]
    assert uid_set([5, 1, 2, 3, 9, 10, 12]) == "1:3,5,9:10,12"
