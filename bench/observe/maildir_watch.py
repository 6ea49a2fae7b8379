"""Watch Maildirs and report the moment each message becomes visible in a mailbox.

A message is visible once its file is in ``new/`` (MTAs write it in ``tmp/``, then rename or
link it there). The watcher reads only the file's header block, hands its :class:`Identity`
(or None for mail that is not mailsla's) and the ``time.monotonic_ns()`` of the observation to
a sink, then optionally disposes of the file. inotify (``IN_MOVED_TO | IN_CREATE`` on each
``new/``) timestamps each batch of kernel events as it is read; without inotify, ``new/`` is
listed every ``fallback_interval`` and the listing's time is the visible time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from bench.core.message import Identity, parse_identity
from bench.errors import RunError
from bench.observe.fate_reader import marks_of

log = logging.getLogger(__name__)

VisibleSink = Callable[[Identity | None, int], None]
KeepIf = Callable[[Identity | None], bool]  # True: leave this message where it is
"""``sink(identity or None when the message is not ours, monotonic ns when it was seen)``"""

Dispose = Literal["keep", "move", "delete"]

HEADER_CHUNK = 4096
MESSAGE_MAX = 64 << 20  # labelled traffic: a copy is read whole up to this (the marks)
HEADER_MAX = 64 * 1024  # a header block longer than this is parsed as far as it was read
READ_EVENTS = 32 * 1024  # bytes of inotify events handled per loop callback (~400 events)
FORGET_AFTER = 65536  # > the kernel's default inotify queue (16384 events)
YIELD_EVERY = 512  # a scan lets the event loop run after this many files
DRAIN_READS = 4096  # reads of queued events at stop(): far more than the kernel queue holds

IN_CREATE, IN_MOVED_TO, IN_Q_OVERFLOW, IN_IGNORED = 0x100, 0x80, 0x4000, 0x8000
IN_ISDIR, IN_ONLYDIR = 0x40000000, 0x01000000
_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name


class WatchError(RunError):
    """A watcher could not start: the message is one line saying why."""


@dataclass
class WatchStats:
    mode: str  # "inotify", "poll" or "imap"
    seen: int = 0  # messages reported to the sink (ours or not)
    foreign: int = 0  # of which had no mailsla identity
    vanished: int = 0  # gone between notification and open (another reader took it)
    errors: int = 0  # unreadable, not disposable, sink failures, lost connections
    rescans: int = 0  # full scans after an inotify queue overflow

    def report(self, sink: VisibleSink, ident: Identity | None, now: int) -> None:
        """Count one message that became visible and hand it on (a failing sink is counted,
        not raised: the watcher must keep watching)."""
        self.seen += 1
        if ident is None:
            self.foreign += 1
        try:
            sink(ident, now)
        except Exception:
            self.errors += 1
            log.exception("visible-message sink failed")


def make_maildir(
    path: Path, owner: tuple[int, int] | None = None, mode: int = 0o777, *, root: Path | None = None
) -> None:
    """Create the Maildir *path* (tmp/, new/, cur/ and the folders between it and *root*).

    *root* (default: the parent of *path*) is the mailbox root the scenario names, made if
    missing. Below it nothing is followed: each folder is made and opened relative to its
    parent's descriptor with ``O_NOFOLLOW``, so a planted symlink (``user0 -> elsewhere``) is
    refused with a :class:`WatchError`, never created into or chowned. Folders it creates get
    *mode* (umask ignored) and *owner* (uid, gid), so that an MTA running as another user
    (Postfix's virtual delivery: 65534) can write; existing ones are left as they are.
    """
    path = Path(path)
    root = path.parent if root is None else Path(root)
    parts = path.relative_to(root).parts
    if any(p in ("", ".", "..") for p in parts):
        raise WatchError(f"{path}: not a folder below {root}")
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts:
            parent, fd = fd, -1  # _folder_in closes the parent, whatever happens
            fd = _folder_in(parent, name, owner, mode, path)
        for sub in ("tmp", "new", "cur"):
            os.close(_folder_in(os.dup(fd), sub, owner, mode, path))
    finally:
        if fd >= 0:
            os.close(fd)


def _folder_in(parent: int, name: str, owner: tuple[int, int] | None, mode: int, path: Path) -> int:
    """The folder *name* in the folder open as *parent* (made if missing), opened without
    following a link; *parent* is closed."""
    try:
        try:
            os.mkdir(name, mode, dir_fd=parent)
            made = True
        except FileExistsError:
            made = False
        try:
            fd = os.open(
                name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent
            )
        except OSError:  # ELOOP: a symlink; ENOTDIR: a file
            raise WatchError(
                f"{path}: {name!r} is not a folder of its own (a symlink or a file): "
                "mailsla does not follow links in a mailbox tree"
            ) from None
    finally:
        os.close(parent)
    if made:
        os.fchmod(fd, mode)
        if owner is not None:
            os.fchown(fd, owner[0], owner[1])
    return fd


def read_header(path: str) -> bytes:
    """The start of file *path* up to and including its first blank line (4 KiB reads)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        buf = b""
        while len(buf) < HEADER_MAX:
            chunk = os.read(fd, HEADER_CHUNK)
            if not chunk:
                break
            start = max(len(buf) - 2, 0)
            buf += chunk
            if buf.find(b"\n\r\n", start) >= 0 or buf.find(b"\n\n", start) >= 0:
                break
        return buf
    finally:
        os.close(fd)


def read_whole(path: str, limit: int = MESSAGE_MAX) -> bytes:
    """File *path*, up to *limit* bytes (labelled traffic: a filter's marks are in the body)."""
    with open(path, "rb") as f:
        return f.read(limit)


class MaildirWatcher:
    """Reports each file appearing in the ``new/`` folder of *maildirs* once.

    ``dispose``: "keep" leaves files (with inotify it then remembers every name it reported:
    about 150 bytes a message, for the watcher's lifetime); "move" renames them to
    ``cur/NAME:2,S`` as an IMAP server marks mail seen; "delete" unlinks them. Both keep the
    disk and the name set small: only the last 65536 disposed names are remembered, against
    late duplicate events. Files must arrive the Maildir way (rename or link from ``tmp/``): one
    created in ``new/`` and written there may be read before it is complete.
    """

    def __init__(
        self,
        maildirs: Sequence[Path],
        sink: VisibleSink,
        *,
        dispose: Dispose = "keep",
        fallback_interval: float = 0.2,
        use_inotify: bool = True,
        read_marks: bool = False,
        junk: Sequence[Path] = (),
        keep: KeepIf | None = None,
    ) -> None:
        self._keep = keep  # messages it says True of are never disposed of (not ours)
        self._read_marks = read_marks  # read each copy whole for its fate marks
        boxes = [*maildirs, *junk]  # junk: Junk folders (Maildir++ .Junk/): what is there is tagged
        self._junk_from = len(maildirs)
        self._new = [os.path.join(os.fspath(m), "new") for m in boxes]
        self._cur = [os.path.join(os.fspath(m), "cur") for m in boxes]
        self._sink = sink
        self._dispose = dispose
        self.fallback_interval = fallback_interval
        self._use_inotify = use_inotify
        self._seen: list[set[str]] = [set() for _ in self._new]
        self._disposed: deque[tuple[int, str]] = deque()
        self._wd: dict[int, int] = {}  # inotify watch descriptor -> index in self._new
        self._inotify: Any = None
        self._fd = -1
        self._task: asyncio.Task[None] | None = None
        self._rescan_task: asyncio.Task[None] | None = None
        self._rescan_again = False
        self._scan_lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._started = False
        self.fallback_reason = ""  # why inotify is not used, when it is not
        self.stats = WatchStats(mode="inotify" if use_inotify else "poll")

    @property
    def mode(self) -> str:
        return self.stats.mode

    @property
    def resolution_s(self) -> float:
        """How late a visible time may be, by design: 0 for inotify, the interval when polling."""
        return 0.0 if self.mode == "inotify" else self.fallback_interval

    async def start(self) -> None:
        """Watch (or poll), then report the messages already in ``new/``."""
        self._check_folders()
        self._started = True
        if self._use_inotify:
            try:
                self._start_inotify()
            except (ImportError, OSError, RuntimeError) as e:
                self._close_inotify()
                self.fallback_reason = f"inotify unavailable ({e}); polling"
                log.warning("%s every %.3fs", self.fallback_reason, self.fallback_interval)
                self.stats.mode = "poll"
        else:
            self.fallback_reason = "inotify disabled"
            self.stats.mode = "poll"
        await self._scan_all()
        if self.mode == "poll":
            self._task = asyncio.create_task(self._poll(), name="maildir-poll")

    async def stop(self) -> None:
        """Stop watching, after reporting what is already queued or in ``new/``."""
        if not self._started or self._stopping.is_set():
            return
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._fd >= 0:
            asyncio.get_running_loop().remove_reader(self._fd)
            for _ in range(DRAIN_READS):  # events the kernel already queued (bounded)
                if not self._read_events():
                    break
        if self._rescan_task is not None:
            await self._rescan_task
        await self._scan_all()
        self._close_inotify()

    def _check_folders(self) -> None:
        for d in self._new:
            if not os.path.isdir(d):
                raise WatchError(f"not a Maildir (no new/ folder): {os.path.dirname(d)}")

    # inotify

    def _start_inotify(self) -> None:
        from asyncinotify import Inotify, Mask

        self._inotify = ino = Inotify()
        mask = Mask(IN_MOVED_TO | IN_CREATE | IN_ONLYDIR)
        for i, d in enumerate(self._new):
            self._wd[ino.add_watch(d, mask).wd] = i
        # asyncinotify's NONBLOCK flag is really O_CLOEXEC: make the fd non-blocking here.
        # Events are read here rather than with Inotify.get(), to take one timestamp per kernel
        # read and to keep one reader on the fd instead of adding/removing it per batch.
        self._fd = ino.fd
        os.set_blocking(self._fd, False)
        asyncio.get_running_loop().add_reader(self._fd, self._read_events)

    def _close_inotify(self) -> None:
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        self._fd = -1

    def _read_events(self) -> bool:
        """Handle one read of queued events; False when there were none."""
        try:
            data = os.read(self._fd, READ_EVENTS)
        except BlockingIOError:
            return False
        except OSError as e:
            self.stats.errors += 1
            log.error("reading inotify events: %s", e)
            return False
        now = time.monotonic_ns()
        off, size = 0, len(data)
        while off + 16 <= size:
            wd, mask, _, length = _EVENT.unpack_from(data, off)
            name = data[off + 16 : off + 16 + length].rstrip(b"\0")
            off += 16 + length
            if mask & IN_Q_OVERFLOW:
                self._schedule_rescan()
            elif mask & IN_IGNORED and wd in self._wd:
                self.stats.errors += 1  # the folder itself went away
                log.error("no longer watching %s", self._new[self._wd.pop(wd)])
            elif mask & (IN_CREATE | IN_MOVED_TO) and not mask & IN_ISDIR and wd in self._wd:
                self._handle(self._wd[wd], os.fsdecode(name), now)
        return size > 0

    def _schedule_rescan(self) -> None:
        log.warning("inotify queue overflow: rescanning new/ folders")
        self._rescan_again = True
        if self._rescan_task is None or self._rescan_task.done():
            self._rescan_task = asyncio.create_task(self._rescan(), name="maildir-rescan")

    async def _rescan(self) -> None:
        while self._rescan_again:
            self._rescan_again = False
            self.stats.rescans += 1
            await self._scan_all()

    # scanning

    async def _poll(self) -> None:
        interval = self.fallback_interval
        due = time.monotonic() + interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(due - time.monotonic(), 0))
            if not self._stopping.is_set():
                await self._scan_all()
            due = max(due + interval, time.monotonic())  # a fixed cadence; no catch-up bursts

    async def _scan_all(self) -> None:
        async with self._scan_lock:
            for i in range(len(self._new)):
                await self._scan(i)

    async def _scan(self, i: int) -> None:
        """Report the files in ``new/`` not reported yet; the listing's time is their time."""
        try:
            with os.scandir(self._new[i]) as it:
                names = [e.name for e in it]
        except OSError as e:
            self.stats.errors += 1
            log.error("listing %s: %s", self._new[i], e)
            return
        now = time.monotonic_ns()
        seen = self._seen[i]
        if self.mode == "poll":  # no concurrent events: forget names no longer in new/
            seen.intersection_update(names)
        for k, name in enumerate(names):
            if name not in seen:
                self._handle(i, name, now)
            if k % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)

    # one file

    def _handle(self, i: int, name: str, now: int) -> None:
        seen = self._seen[i]
        if name in seen or name.startswith("."):
            return
        path = self._new[i] + "/" + name
        try:
            head = read_whole(path) if self._read_marks else read_header(path)
        except FileNotFoundError:
            self.stats.vanished += 1
            return
        except OSError as e:
            seen.add(name)
            self.stats.errors += 1
            log.error("reading %s: %s", path, e)
            return
        seen.add(name)
        ident = parse_identity(head)
        if self._read_marks and ident is not None:
            ident = dataclasses.replace(ident, marks=marks_of(head, junk=i >= self._junk_from))
        self.stats.report(self._sink, ident, now)
        if self._dispose != "keep" and not (self._keep is not None and self._keep(ident)):
            self._dispose_of(i, name, path)

    def _dispose_of(self, i: int, name: str, path: str) -> None:
        try:
            if self._dispose == "delete":
                os.unlink(path)
            else:
                os.rename(path, f"{self._cur[i]}/{name.partition(':')[0]}:2,S")
        except FileNotFoundError:
            pass  # someone else took it
        except OSError as e:
            self.stats.errors += 1  # stays in new/ and in the seen set
            log.error("disposing of %s: %s", path, e)
            return
        self._disposed.append((i, name))
        if len(self._disposed) > FORGET_AFTER:
            j, old = self._disposed.popleft()
            self._seen[j].discard(old)
