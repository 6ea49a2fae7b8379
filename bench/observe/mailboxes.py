"""The receive lane's mailboxes: which users, where their Maildirs are, and the watcher on them.

With the embedded fake MTA the Maildirs live in a temporary folder (removed afterwards) unless
``mailbox.maildir`` names one; ``mailbox.watch = "imap"`` without an address starts a throwaway
Dovecot over them. With a real system the scenario names the Maildir folder or the IMAP server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bench.config.scenario import Scenario
from bench.errors import StartupError
from bench.harness.dovecot import DovecotError, ThrowawayDovecot
from bench.observe.imap_watch import ImapWatcher
from bench.observe.maildir_watch import (
    KeepIf,
    MaildirWatcher,
    VisibleSink,
    WatchError,
    WatchStats,
    make_maildir,
)

DOVECOT_PASSWORD = "mailsla"


class Watcher(Protocol):
    """What watches the mailboxes: a :class:`MaildirWatcher` or :class:`ImapWatcher` here, or
    one elsewhere (a Ray actor on the node holding the Maildirs: bench.procs.ray_watcher)."""

    stats: WatchStats

    @property
    def mode(self) -> str: ...
    @property
    def resolution_s(self) -> float: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


# A watcher elsewhere for the users' Maildirs and Junk folders; *root*: make them there first,
# below it (None: they are this host's temporary ones, made here).
RemoteWatch = Callable[[list[Path], list[Path], Path | None], Watcher]


def mailbox_users(sc: Scenario) -> list[str]:
    """The local users inbound mail is spread over (``user0`` … as the message factory names
    them)."""
    return [f"user{i}" for i in range(sc.message.users)]


class Mailboxes:
    """Owns the Maildir folder (when temporary), a throwaway Dovecot (when asked) and the
    watcher; :meth:`start` before sending, :meth:`stop` after the drain."""

    def __init__(
        self,
        sc: Scenario,
        sink: VisibleSink,
        imap_password: str | None,
        *,
        keep: KeepIf | None = None,
        remote: RemoteWatch | None = None,
    ) -> None:
        self.sc = sc
        self.remote = remote  # the Maildirs are watched elsewhere (on a Ray node)
        self.sink = sink
        self.keep = keep  # with dispose: messages never disposed of (the monitor: not ours)
        self.imap_password = imap_password
        self.users = mailbox_users(sc)
        mb = sc.mailbox
        self._temp = sc.system.kind == "fakemta" and mb.maildir is None
        self.root: Path | None = (
            Path(tempfile.mkdtemp(prefix="mailsla-mail-"))
            if self._temp
            else Path(mb.maildir)
            if mb.maildir
            else None
        )
        # With watch = "imap" and no address: a throwaway Dovecot (running as another user)
        # serves the Maildirs, so they must be reachable and readable by it.
        self.serves_imap = mb.watch == "imap" and mb.imap is None
        if self.root is not None and self._temp:
            self.root.chmod(0o755)
        self.dovecot: ThrowawayDovecot | None = None
        self._stopping = threading.Event()
        self.watcher: Watcher | None = None
        self.read_marks = sc.message.mix is not None  # labelled traffic: read the fates
        # Labelled traffic: each user's Junk folder is watched too (what is there is tagged).
        self.junk = mb.junk if self.read_marks else ""
        self.junk_watcher: ImapWatcher | None = None

    async def start(self) -> None:
        mb = self.sc.mailbox
        local = self.remote is None  # a remote watcher checks its node's folder
        if local and not self._temp and self.root is not None and not self.root.is_dir():
            raise StartupError(
                f"mailbox.maildir: {self.root} is not a folder (is the mail system running, "
                "and delivering there? for scenarios/postfix.toml, start `mailsla postfix`)"
            )
        try:
            if mb.watch == "maildir":
                assert self.root is not None
                dirs = [self.root / u for u in self.users]
                junk = self._junk_dirs()
                if self.remote is not None:
                    if self._temp:
                        await self._make_off_loop(dirs + junk)
                    self.watcher = self.remote(dirs, junk, None if self._temp else self.root)
                else:
                    await self._make_off_loop(dirs + junk)
                    self.watcher = MaildirWatcher(
                        dirs,
                        self.sink,
                        dispose=mb.dispose,
                        read_marks=self.read_marks,
                        junk=junk,
                        keep=self.keep,
                    )
            else:
                host, port = await self._imap_address()
                password = self.imap_password or DOVECOT_PASSWORD
                self.watcher = self._imap(host, port, password, "INBOX", junk=False)
                if self.junk:
                    self.junk_watcher = self._imap(host, port, password, self.junk, junk=True)
            await self.watcher.start()
            if self.junk_watcher is not None:
                await self.junk_watcher.start()
        except (WatchError, DovecotError) as exc:
            raise StartupError(f"the mailbox watcher did not start: {exc}") from None
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise StartupError(
                f"the mailbox watcher did not start: {exc.strerror or exc}{where}"
            ) from None

    def _imap(self, host: str, port: int, password: str, box: str, *, junk: bool) -> ImapWatcher:
        mb = self.sc.mailbox
        return ImapWatcher(
            host,
            port,
            self.users,
            password,
            self.sink,
            interval=mb.poll_interval,
            mailbox=box,
            dispose="delete" if mb.dispose == "delete" else "keep",
            read_marks=self.read_marks,
            junk=junk,
            keep=self.keep,
        )

    def _junk_dirs(self) -> list[Path]:
        """The users' Junk folders in the Maildir++ layout (``<user>/.Junk``)."""
        if not self.junk or self.root is None:
            return []
        return [self.root / u / f".{self.junk}" for u in self.users]

    async def _imap_address(self) -> tuple[str, int]:
        mb = self.sc.mailbox
        if mb.imap is not None:
            return mb.imap
        assert self.root is not None
        await self._make_off_loop([self.root / u for u in self.users] + self._junk_dirs())
        self.dovecot = ThrowawayDovecot(self.root, password=DOVECOT_PASSWORD)
        loop = asyncio.get_running_loop()
        port = await loop.run_in_executor(None, self.dovecot.start)
        return "127.0.0.1", port

    def abandon(self) -> None:
        """Stop making mailboxes (the run is being stopped): :meth:`start` ends soon after."""
        self._stopping.set()

    async def _make_off_loop(self, dirs: list[Path]) -> None:
        """:meth:`_make` in a thread: thousands of mailboxes must not hold up the loop (nor
        Ctrl-C, which :meth:`abandon` answers between two of them)."""
        await asyncio.get_running_loop().run_in_executor(None, self._make, dirs)
        if self._stopping.is_set():
            raise StartupError("stopped while making the mailboxes")

    def _make(self, dirs: list[Path]) -> None:
        """Create the Maildirs the watcher needs (an MTA makes them only at first delivery):
        in a temporary root open to all; in a system's root, owned as the root is, private."""
        assert self.root is not None
        root = self.root
        if self._temp:
            for d in dirs:
                if self._stopping.is_set():
                    return
                make_maildir(d, root=root)
            return
        st = root.stat()
        for d in dirs:
            if self._stopping.is_set():
                return
            make_maildir(d, owner=(st.st_uid, st.st_gid), mode=0o700, root=root)

    async def stop(self) -> None:
        """Final look at the mailboxes, then stop the watcher and Dovecot."""
        if self.watcher is not None:
            await self.watcher.stop()
        if self.junk_watcher is not None:
            await self.junk_watcher.stop()
        if self.dovecot is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.dovecot.stop)
            self.dovecot = None

    @property
    def lost_reason(self) -> str | None:
        """Why the run is not whole when a watcher elsewhere died mid-run (None: none did)."""
        reason = getattr(self.watcher, "lost_reason", None)
        return reason if isinstance(reason, str) else None

    def cleanup(self) -> None:
        if self._temp and self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    def info(self) -> dict[str, Any]:
        """The result's ``receive`` section: how visibility was observed, and how finely."""
        w = self.watcher
        out: dict[str, Any] = {
            "watch": self.sc.mailbox.watch,
            "users": len(self.users),
            "maildir": str(self.root) if self.root and not self._temp else None,
            "dovecot": self.serves_imap,
        }
        if w is not None:
            out["mode"] = w.mode
            out["resolution_s"] = w.resolution_s
            out["stats"] = dataclasses.asdict(w.stats)
        if self.junk:
            out["junk"] = self.junk
            if self.junk_watcher is not None:
                out["junk_stats"] = dataclasses.asdict(self.junk_watcher.stats)
        return out
