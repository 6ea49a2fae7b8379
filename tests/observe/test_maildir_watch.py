"""MaildirWatcher on real Maildirs in tmp_path, with inotify and with the polling fallback."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench.core.message import Identity
from bench.observe.maildir_watch import (
    HEADER_CHUNK,
    MaildirWatcher,
    WatchError,
    make_maildir,
    read_header,
)

POLL = 0.02


def message(i: int, run: str = "r1", *, eol: bytes = b"\r\n", body: bytes = b"hello") -> bytes:
    head = [b"From: a@b.test", b"X-Mailsla-Run: " + run.encode(), b"X-Mailsla-Id: %010d" % i]
    return eol.join([*head, b"", body])


def deliver(
    maildir: Path, name: str, content: bytes, *, link: bool = False, fsync: bool = True
) -> Path:
    """The MDA way: write in tmp/, fsync, then rename (or link) into new/."""
    tmp, new = maildir / "tmp" / name, maildir / "new" / name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, content)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    if link:
        os.link(tmp, new)
        os.unlink(tmp)
    else:
        os.rename(tmp, new)
    return new


class Visible:
    """What a watcher reported; ``wait(n)`` returns once n reports are in."""

    def __init__(self) -> None:
        self.items: list[tuple[Identity | None, int]] = []
        self._want = 0
        self._event = asyncio.Event()

    def sink(self, ident: Identity | None, ns: int) -> None:
        self.items.append((ident, ns))
        if len(self.items) >= self._want:
            self._event.set()

    async def wait(self, n: int, timeout: float = 10.0) -> None:
        self._want = n
        self._event.clear()
        if len(self.items) >= n:
            return
        async with asyncio.timeout(timeout):
            await self._event.wait()

    @property
    def ids(self) -> Counter[int | None]:
        return Counter(i.id if i is not None else None for i, _ in self.items)


@pytest.fixture(params=["inotify", "poll"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def md(tmp_path: Path) -> Path:
    make_maildir(tmp_path / "u0")
    return tmp_path / "u0"


@pytest.fixture
async def watch(md: Path, mode: str) -> AsyncIterator[tuple[MaildirWatcher, Visible]]:
    seen = Visible()
    w = MaildirWatcher([md], seen.sink, use_inotify=mode == "inotify", fallback_interval=POLL)
    await w.start()
    assert w.mode == mode and w.stats.mode == mode
    yield w, seen
    await w.stop()


async def test_rename_and_link_are_seen_with_identity(
    watch: tuple[MaildirWatcher, Visible], md: Path, mode: str
) -> None:
    w, seen = watch
    before = time.monotonic_ns()
    deliver(md, "1.M1.host", message(1))
    deliver(md, "2.M2.host", message(2), link=True)
    await seen.wait(2)
    assert sorted(i.id for i, _ in seen.items if i) == [1, 2]
    assert all(i == Identity("r1", i.id) for i, _ in seen.items if i)
    assert all(before <= ns <= time.monotonic_ns() for _, ns in seen.items)
    assert w.resolution_s == (0.0 if mode == "inotify" else POLL)


async def test_crlf_lf_and_foreign(watch: tuple[MaildirWatcher, Visible], md: Path) -> None:
    w, seen = watch
    deliver(md, "crlf", message(7, "run-a"))
    deliver(md, "lf", message(8, "run-b", eol=b"\n"))
    deliver(md, "foreign", b"From: x@y\r\nSubject: not ours\r\n\r\nX-Mailsla-Id: 0000000009\r\n")
    deliver(md, ".hidden", message(10))  # Maildir readers skip dot files
    await seen.wait(3)
    await w.stop()
    assert {i for i, _ in seen.items} == {Identity("run-a", 7), Identity("run-b", 8), None}
    assert (w.stats.seen, w.stats.foreign, w.stats.errors) == (3, 1, 0)


async def test_a_bad_identity_costs_only_its_own_message(
    watch: tuple[MaildirWatcher, Visible], md: Path
) -> None:
    """A 5,000-digit id (it once raised in the callback and dropped the rest of the batch of
    file events), an id wider than mailsla writes, and good mail around them in one batch."""
    w, seen = watch
    deliver(md, "a", message(1))
    huge = b"X-Mailsla-Run: r1\r\nX-Mailsla-Id: " + b"9" * 5000 + b"\r\n\r\nx"
    deliver(md, "b", huge)
    deliver(md, "c", message(99999999999))  # 11 digits: not an id mailsla writes
    deliver(md, "d", message(2))
    await seen.wait(4)
    await w.stop()
    assert sorted(i.id for i, _ in seen.items if i) == [1, 2]
    assert (w.stats.seen, w.stats.foreign, w.stats.errors) == (4, 2, 0)


async def test_messages_already_there_are_reported_at_start(md: Path, mode: str) -> None:
    deliver(md, "old", message(1))
    seen = Visible()
    w = MaildirWatcher([md], seen.sink, use_inotify=mode == "inotify", fallback_interval=60)
    await w.start()
    assert seen.ids == {1: 1}  # the start scan is done when start() returns
    await w.stop()
    assert seen.ids == {1: 1}


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
@pytest.mark.parametrize("shift", range(-3, 3))
def test_read_header_stops_at_the_blank_line(tmp_path: Path, eol: bytes, shift: int) -> None:
    # the blank line straddles the first 4 KiB chunk's end; the body holds no blank line
    # but fake identity headers, and is far longer than what may be read
    head = eol.join([b"X-Mailsla-Run: r", b"X-Mailsla-Id: 0000000005", b"X-Pad: "])
    pad = HEADER_CHUNK + shift - len(head) - 2 * len(eol)
    block = head + b"p" * pad + eol + eol
    p = tmp_path / "m"
    p.write_bytes(block + b"X-Mailsla-Id: 0000000006" + eol + b"x" * 100_000)
    got = read_header(str(p))
    assert got.startswith(block) and len(got) <= 2 * HEADER_CHUNK


async def test_huge_body_is_not_read(watch: tuple[MaildirWatcher, Visible], md: Path) -> None:
    _, seen = watch
    tmp = md / "tmp" / "huge"
    tmp.write_bytes(message(3, body=b"body\r\n"))
    with tmp.open("r+b") as f:  # a sparse 16 GiB body: reading it whole would never end
        f.truncate(16 << 30)
    assert len(read_header(str(tmp))) <= HEADER_CHUNK
    os.rename(tmp, md / "new" / "huge")
    await seen.wait(1)
    assert seen.ids == {3: 1}


async def test_file_gone_before_it_is_read(md: Path, mode: str) -> None:
    seen = Visible()
    w = MaildirWatcher([md], seen.sink, use_inotify=mode == "inotify", fallback_interval=POLL)
    await w.start()
    deliver(md, "a", message(1))
    os.unlink(deliver(md, "b", message(2)))  # no await in between: b's event is queued
    await seen.wait(1)
    await w.stop()
    assert seen.ids == {1: 1}
    assert w.stats.vanished == (1 if mode == "inotify" else 0) and w.stats.errors == 0


@pytest.mark.parametrize("dispose", ["move", "delete"])
async def test_dispose(md: Path, mode: str, dispose: str) -> None:
    seen = Visible()
    w = MaildirWatcher(
        [md],
        seen.sink,
        dispose=dispose,  # type: ignore[arg-type]
        use_inotify=mode == "inotify",
        fallback_interval=POLL,
    )
    deliver(md, "0.M0.host", message(0))
    await w.start()
    for i in range(1, 20):
        deliver(md, f"{i}.M{i}.host", message(i))
    await seen.wait(20)
    await w.stop()
    assert seen.ids == dict.fromkeys(range(20), 1)
    assert os.listdir(md / "new") == []
    cur = sorted(os.listdir(md / "cur"))
    if dispose == "move":
        assert cur == sorted(f"{i}.M{i}.host:2,S" for i in range(20))
    else:
        assert cur == []


async def test_stop_reports_late_files(md: Path, mode: str) -> None:
    seen = Visible()
    w = MaildirWatcher([md], seen.sink, use_inotify=mode == "inotify", fallback_interval=60)
    await w.start()
    deliver(md, "late1", message(1))
    deliver(md, "late2", message(2), link=True)
    await w.stop()  # no await before: only stop() can have seen them
    assert seen.ids == {1: 1, 2: 1}


@pytest.mark.parametrize("dispose", ["keep", "delete"])
async def test_many_files_over_several_maildirs_seen_once(
    tmp_path: Path, mode: str, dispose: str
) -> None:
    mds = [tmp_path / f"u{k}" for k in range(4)]
    for m in mds:
        make_maildir(m)
    seen = Visible()
    w = MaildirWatcher(
        mds,
        seen.sink,
        dispose=dispose,  # type: ignore[arg-type]
        use_inotify=mode == "inotify",
        fallback_interval=POLL,
    )
    await w.start()
    n = 2000
    for i in range(n):
        deliver(mds[i % 4], f"{i}.M{i}.host", message(i), link=i % 3 == 0)
        if i % 250 == 0:
            await asyncio.sleep(0)  # let the watcher work while mail arrives
    await seen.wait(n, timeout=30)
    await w.stop()
    assert seen.ids == dict.fromkeys(range(n), 1)
    assert (w.stats.seen, w.stats.errors, w.stats.vanished) == (n, 0, 0)


def inotify_queue_limit() -> int:
    return int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())


async def test_inotify_queue_overflow_rescans(md: Path) -> None:
    limit = inotify_queue_limit()
    if limit > 100_000:
        pytest.skip(f"inotify queue holds {limit} events: too many files to overflow it")
    seen = Visible()
    w = MaildirWatcher([md], seen.sink)
    await w.start()
    n = limit + 500
    for i in range(n):  # no await: the kernel queue overflows
        deliver(md, f"{i}.M{i}.host", message(i, body=b""), fsync=False)
    await seen.wait(n, timeout=60)
    await w.stop()
    assert w.mode == "inotify" and w.stats.rescans >= 1
    assert seen.ids == dict.fromkeys(range(n), 1)


async def test_falls_back_to_polling_without_asyncinotify(
    md: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "asyncinotify", None)  # import fails
    seen = Visible()
    w = MaildirWatcher([md], seen.sink, fallback_interval=POLL)
    await w.start()
    deliver(md, "1", message(1))
    await seen.wait(1)
    await w.stop()
    assert (w.mode, w.resolution_s, seen.ids) == ("poll", POLL, {1: 1})
    assert "inotify unavailable" in w.fallback_reason


async def test_not_a_maildir(tmp_path: Path) -> None:
    w = MaildirWatcher([tmp_path / "nope"], Visible().sink)
    with pytest.raises(WatchError, match="not a Maildir"):
        await w.start()


def test_make_maildir(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "user"
    owner = (65534, 65534) if os.geteuid() == 0 else None
    make_maildir(root, owner=owner, mode=0o770)
    for d in (root, root / "tmp", root / "new", root / "cur"):
        st = d.stat()
        assert st.st_mode & 0o777 == 0o770
        if owner:
            assert (st.st_uid, st.st_gid) == owner
    make_maildir(root)  # existing folders are left alone
    assert (root / "new").stat().st_mode & 0o777 == 0o770


def test_make_maildir_follows_no_link_below_its_root(tmp_path: Path) -> None:
    """A planted ``user0 -> elsewhere`` is refused: nothing is made (or chowned) elsewhere."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "user0").symlink_to(elsewhere)
    with pytest.raises(WatchError, match="does not follow links"):
        make_maildir(root / "user0", owner=None, mode=0o700, root=root)
    assert list(elsewhere.iterdir()) == []
    (root / "user1").mkdir()
    (root / "user1" / "new").symlink_to(elsewhere)  # deeper down too
    with pytest.raises(WatchError, match="'new' is not a folder of its own"):
        make_maildir(root / "user1", root=root)
    assert list(elsewhere.iterdir()) == []
    (root / "user2").write_text("a file")
    with pytest.raises(WatchError):
        make_maildir(root / "user2", root=root)
    with pytest.raises(WatchError, match="not a folder below"):
        make_maildir(root / "x" / ".." / "y", root=root)
