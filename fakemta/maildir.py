"""Local delivery: the fake MTA's MDA, writing mail for its own users into Maildirs.

Each known user *u* has ``<root>/<u>/{tmp,new,cur}``. A message is held for its delivery delay
(a timer, as in the relay: a held message occupies no thread), then written the way a real MDA
does it: into ``tmp/`` under a unique name (``<sec>.M<usec>P<pid>Q<seq>.<host>``), fsync'd, and
renamed into ``new/``, where a reader only ever sees whole messages. ``Return-Path:`` and
``Delivered-To:`` are prepended; the rest is the message exactly as received.

Nothing below the mailbox root is followed, at set-up or at delivery: the root is opened once
(it is what the configuration names), and each mailbox, its ``tmp/`` and ``new/``, and the
message file are opened relative to their parent's descriptor with ``O_NOFOLLOW``, so a planted
symlink (``user0 -> elsewhere``, ``user0/new -> elsewhere``) is refused, never written through. A
mailbox is one of the configured users' names (checked: one path component), never a
recipient's local part, so an address like ``../x@local.test`` is an unknown user.

The file work runs on a few threads so a burst of deliveries does not stall SMTP. Ready
deliveries are handed over in batches: at most :data:`MDA_THREADS` batches are in flight, and
whatever becomes ready meanwhile waits in one list and goes out as the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import itertools
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from bench.smtp.body import release_soon
from bench.timing.pacer import Pacer

log = logging.getLogger("fakemta.maildir")

MDA_THREADS = 2  # fsync-bound: more threads add contention, not deliveries (measured)
BATCH_MAX = 64
_seq = itertools.count(1)  # per process, shared by every mailbox: part of the unique name


@dataclass(slots=True)
class LocalJob:
    """One accepted message for local recipients: (mailbox user, address) pairs."""

    qid: str
    mail_from: str
    rcpts: list[tuple[str, str]]
    content: bytes
    folder: str = ""  # a Maildir++ subfolder of each mailbox (".Junk"), made when missing


@dataclass(slots=True)
class LocalStats:
    """Counts per recipient (one mailbox file each), not per message."""

    queued: int = 0
    delivered: int = 0
    failed: int = 0
    holding: int = 0
    holding_bytes: int = 0  # the content of the jobs held (one copy per job)
    unknown_user: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "local_queued": self.queued,
            "delivered_local": self.delivered,
            "local_failed": self.failed,
            "local_in_queue": self.holding,
            "unknown_user": self.unknown_user,
        }


def maildir_name(host: str) -> str:
    """A unique Maildir file name: ``<sec>.M<usec>P<pid>Q<seq>.<host>``."""
    sec, ns = divmod(time.time_ns(), 1_000_000_000)
    return f"{sec}.M{ns // 1000}P{os.getpid()}Q{next(_seq)}.{host}"


_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_name(name: str) -> None:
    """Raise ValueError unless *name* can be one folder's name (no path in it)."""
    if not name or "/" in name or name in (".", "..") or "\0" in name:
        raise ValueError(f"{name!r} cannot be a mailbox name")


def open_root(root: str) -> int:
    """The mailbox root (made if missing) opened as a folder: the one path that is followed."""
    os.makedirs(root, exist_ok=True)
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def open_folder(parent: int, name: str, *, make: bool = False) -> int:
    """The folder *name* in the folder open as *parent* (made first if *make*), opened without
    following a link: a symlink or a file there is an OSError saying so."""
    check_name(name)
    if make:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o777, dir_fd=parent)  # the umask applies, as to makedirs
    try:
        return os.open(name, _DIR, dir_fd=parent)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise OSError(
            exc.errno, f"{name!r} is a symlink or a file, not a folder: links are not followed"
        ) from None


def make_maildir(root: int | str, user: str) -> None:
    """Create the Maildir ``<root>/<user>`` with tmp/, new/ and cur/ (*root*: a path, or a
    folder already open); nothing below the root is followed."""
    top = open_root(root) if isinstance(root, str) else os.dup(root)
    try:
        box = open_folder(top, user, make=True)
    finally:
        os.close(top)
    try:
        for sub in ("tmp", "new", "cur"):
            os.close(open_folder(box, sub, make=True))
    finally:
        os.close(box)


def deliver_one(
    root: int,
    user: str,
    name: str,
    head: bytes,
    content: bytes,
    mode: int = 0o600,
    folder: str = "",
) -> str:
    """Write *head* + *content* to ``<user>/tmp/<name>`` below the folder open as *root*,
    fsync, rename into ``new/``; returns the final path below the root. With *folder*
    (``".Junk"``) the Maildir++ subfolder ``<user>/<folder>/`` takes it; it must exist
    (:meth:`Maildirs.deliver_batch` makes it once, with :func:`make_maildir`). Nothing is
    followed (:func:`open_folder`). Blocking: call it from a thread."""
    box = open_folder(root, user)
    if folder:
        try:
            sub = open_folder(box, folder)
        finally:
            os.close(box)
        box = sub
    tmp = new = fd = -1
    try:
        tmp, new = open_folder(box, "tmp"), open_folder(box, "new")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(name, flags, mode, dir_fd=tmp)
        try:
            total = len(head) + len(content)
            done = os.writev(fd, (head, content))
            if done < total:  # a short write: finish it plainly
                rest = memoryview(head + content)[done:]
                while rest:
                    rest = rest[os.write(fd, rest) :]
            os.fsync(fd)
            os.close(fd)
            fd = -1
            os.rename(name, name, src_dir_fd=tmp, dst_dir_fd=new)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=tmp)
            raise
    finally:
        for d in (fd, new, tmp, box):
            if d >= 0:
                os.close(d)
    return os.path.join(user, folder, "new", name)


class Maildirs:
    """The mailboxes under one root; :meth:`deliver_batch` is the blocking MDA."""

    def __init__(
        self, root: str, users: tuple[str, ...], hostname: str, file_mode: int = 0o600
    ) -> None:
        for u in users:
            check_name(u)
        self.root = root
        self.root_fd = -1  # open from create() to close()
        self.users = users
        self.file_mode = file_mode  # 0o644 when an IMAP server running as another user reads
        # Maildir: '/' and ':' in the host part are written as \057 and \072
        self.host = hostname.replace("/", r"\057").replace(":", r"\072")
        self._subfolders: set[tuple[str, str]] = set()  # (user, ".Junk") made so far

    def create(self) -> None:
        """Open the root and create every user's Maildir (OSError: one cannot be)."""
        if self.root_fd < 0:
            self.root_fd = open_root(self.root)
        for u in self.users:
            make_maildir(self.root_fd, u)

    def close(self) -> None:
        if self.root_fd >= 0:
            os.close(self.root_fd)
            self.root_fd = -1

    def deliver_batch(self, jobs: list[LocalJob]) -> tuple[int, int]:
        """Deliver every recipient of every job; returns (delivered, failed)."""
        delivered = failed = 0
        for job in jobs:
            sender = "" if job.mail_from == "<>" else job.mail_from  # aiosmtpd's null sender
            rp = f"Return-Path: <{sender}>\r\n".encode(errors="surrogateescape")
            for user, addr in job.rcpts:
                to = f"Delivered-To: {addr.lower()}\r\n"  # as Postfix: the lowercased recipient
                head = rp + to.encode(errors="surrogateescape")
                try:
                    if self.root_fd < 0:
                        raise OSError(errno.EBADF, "the mailboxes are closed")
                    if job.folder:
                        self._subfolder(user, job.folder)
                    deliver_one(
                        self.root_fd,
                        user,
                        maildir_name(self.host),
                        head,
                        job.content,
                        self.file_mode,
                        job.folder,
                    )
                except OSError as exc:
                    failed += 1
                    log.warning("local delivery of %s to %s failed: %s", job.qid, addr, exc)
                else:
                    delivered += 1
        return delivered, failed

    def _subfolder(self, user: str, folder: str) -> None:
        """Make ``<user>/<folder>/`` (a Maildir++ subfolder) the first time it is asked for.
        Threads may race to make it: making it is idempotent."""
        if (user, folder) in self._subfolders:
            return
        box = open_folder(self.root_fd, user)
        try:
            make_maildir(box, folder)
        finally:
            os.close(box)
        self._subfolders.add((user, folder))


class LocalDelivery:
    """Holds local mail for its delay, then delivers it on :data:`MDA_THREADS` threads."""

    def __init__(self, maildirs: Maildirs, threads: int = MDA_THREADS) -> None:
        self.maildirs = maildirs
        self.threads = threads
        self.stats = LocalStats()
        self._pending: list[LocalJob] = []
        self._inflight: set[asyncio.Future[tuple[int, int]]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._stopping = False
        self._kicked = False
        self._pacer: Pacer | None = None  # held jobs' release, made on first use

    def start(self) -> None:
        self.maildirs.create()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="fakemta-mda")

    def submit(self, job: LocalJob, delay: float) -> None:
        """Queue *job*; it is delivered after *delay* seconds."""
        n = len(job.rcpts)
        self.stats.queued += n
        self.stats.holding += n
        self.stats.holding_bytes += len(job.content)
        if self._stopping:  # a connection still open at the stop: it stays in the queue
            return
        if delay <= 0:
            self._ready(job)
            return
        if self._pacer is None:  # never before its delay (see fakemta.relay.Relay.submit)
            self._pacer = Pacer(asyncio.get_running_loop())
        self._pacer.call_later(delay, functools.partial(self._ready, job))

    def _ready(self, job: LocalJob) -> None:
        if self._stopping:
            return
        self._pending.append(job)
        if not self._kicked and len(self._inflight) < self.threads:
            # launch at the end of this loop iteration: what else turns ready meanwhile
            # (a burst of timers, a pipelined client) goes in the same batch
            self._kicked = True
            asyncio.get_running_loop().call_soon(self._launch)

    def _launch(self) -> None:
        self._kicked = False
        loop = asyncio.get_running_loop()
        while self._pool is not None and self._pending and len(self._inflight) < self.threads:
            free = self.threads - len(self._inflight)
            size = min(BATCH_MAX, -(-len(self._pending) // free))  # share out a backlog
            batch = self._pending[:size]
            del self._pending[:size]
            fut = loop.run_in_executor(self._pool, self.maildirs.deliver_batch, batch)
            self._inflight.add(fut)
            n = sum(len(j.rcpts) for j in batch)
            size = sum(len(j.content) for j in batch)
            fut.add_done_callback(functools.partial(self._done, n=n, size=size))

    def _done(self, fut: asyncio.Future[tuple[int, int]], n: int, size: int) -> None:
        self._inflight.discard(fut)
        self.stats.holding_bytes -= size
        release_soon(size)
        if fut.cancelled():
            delivered, failed = 0, 0
        elif (exc := fut.exception()) is not None:
            log.error("local delivery batch failed", exc_info=exc)
            delivered, failed = 0, n
        else:
            delivered, failed = fut.result()
        self.stats.delivered += delivered
        self.stats.failed += failed
        self.stats.holding -= delivered + failed
        if not self._stopping:
            self._launch()

    async def stop(self) -> None:
        """Stop taking held mail; let the batches already writing finish (bounded)."""
        self._stopping = True
        if self._pacer is not None:
            self._pacer.close()
            self._pacer = None
        self._pending.clear()
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if not self._inflight:  # a batch still writing keeps the root open
            self.maildirs.close()
