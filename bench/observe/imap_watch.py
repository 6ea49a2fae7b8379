"""Watch IMAP mailboxes and report the moment each message becomes visible to a client.

One connection per user polls every ``interval``: ``NOOP`` (Dovecot looks for new mail
then; other commands only every 5 s, and its IDLE notifies about every 500 ms), then
``UID SEARCH UID <next>:*`` and, for new UIDs only, in batches,
``UID FETCH <set> (BODY.PEEK[HEADER.FIELDS (X-MAILSLA-RUN X-MAILSLA-ID X-MAILSLA-TAG)])``.
A message's visible time is when the NOOP that revealed it answered, so it is late by at most
``interval`` plus one round trip. ``<next>:*`` always matches the last message, even when
``next`` is past it: only UIDs >= ``next`` are new.

A watcher with ``junk=True`` watches each user's Junk folder instead of *mailbox*: after login
it asks ``LIST "" "*"`` and takes the folder the server marks ``\\Junk`` (SPECIAL-USE, RFC
6154), else the one named *mailbox* or one of :data:`JUNK_ALIASES` (case does not matter); a
user without one is looked for again at each poll. Each copy found there is marked tagged
(:func:`bench.observe.fate_reader.marks_of`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import re
import ssl
import time
from collections.abc import Sequence
from typing import Any, Literal

import aioimaplib

from bench.core.message import parse_identity
from bench.observe.fate_reader import marks_of
from bench.observe.maildir_watch import KeepIf, VisibleSink, WatchError, WatchStats

__all__ = ["ImapWatcher", "VisibleSink", "WatchError"]

log = logging.getLogger(__name__)

FIELDS = "(UID BODY.PEEK[HEADER.FIELDS (X-MAILSLA-RUN X-MAILSLA-ID X-MAILSLA-TAG)])"
WHOLE = "(UID BODY.PEEK[])"  # labelled traffic: the whole copy, for its fate marks
# aioimaplib parses a response recursively, about two frames a fetched message: a FETCH of
# thousands of messages overflows the stack (RecursionError) and the connection dies.
FETCH_BATCH = 100
CONNECT_AT_ONCE = 32  # logins in progress at start
_FETCH = re.compile(rb"\d+ FETCH \(")
_UID = re.compile(rb"UID (\d+)")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]")
_LIST = re.compile(rb'^\(([^)]*)\) (?:"(?:[^"\\]|\\.)*"|NIL) (.+)$', re.IGNORECASE)
JUNK_ALIASES = ("Junk", "Spam", "Junk E-mail", "Junk Email", "INBOX.Junk", "INBOX.Spam")


def uid_set(uids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1:3,7"`` (sorted ascending)."""
    out: list[str] = []
    us = sorted(uids)
    i = 0
    while i < len(us):
        j = i
        while j + 1 < len(us) and us[j + 1] == us[j] + 1:
            j += 1
        out.append(str(us[i]) if i == j else f"{us[i]}:{us[j]}")
        i = j + 1
    return ",".join(out)


def parse_search(lines: Sequence[Any]) -> list[int]:
    """The UIDs in a (UID) SEARCH answer, as aioimaplib hands it over."""
    out: list[int] = []
    for line in lines[:-1]:  # the last one is the tagged status text
        if isinstance(line, bytes):
            out.extend(int(w) for w in line.split() if w.isdigit())
    return out


def junk_folder(lines: Sequence[Any], name: str) -> str | None:
    """The Junk folder in a ``LIST`` answer: the one with ``\\Junk``, else *name* or an alias."""
    folders: list[tuple[bytes, str]] = []
    for line in lines[:-1]:
        m = _LIST.match(line) if isinstance(line, bytes) else None
        if m is not None:
            raw = m.group(2).strip()
            if raw.startswith(b'"') and raw.endswith(b'"') and len(raw) >= 2:
                raw = re.sub(rb"\\(.)", rb"\1", raw[1:-1])
            folders.append((m.group(1).lower(), raw.decode("utf-8", "replace")))
    for flags, folder in folders:
        if b"\\junk" in flags.split():
            return folder
    by_name = {f.lower(): f for _, f in folders if f.lower() != "inbox"}  # never INBOX
    for want in (name, *JUNK_ALIASES):
        if want.lower() in by_name:
            return by_name[want.lower()]
    return None


def parse_fetch(lines: Sequence[Any]) -> list[tuple[int, bytes]]:
    """(UID, header bytes) of each ``n FETCH (UID u BODY[...] {size}`` answer in *lines*."""
    out: list[tuple[int, bytes]] = []
    for k, line in enumerate(lines):
        if not isinstance(line, bytes) or not _FETCH.match(line) or b"BODY[" not in line:
            continue
        literal = line.endswith(b"}") and k + 1 < len(lines)
        header = bytes(lines[k + 1]) if literal else b""
        m = _UID.search(line)
        if m is None and literal and k + 2 < len(lines) and isinstance(lines[k + 2], bytes):
            m = _UID.search(lines[k + 2])  # "BODY[...] {n}" first, "UID u)" after the literal
        if m is not None:
            out.append((int(m.group(1)), header))
    return out


class _Session:
    def __init__(self, user: str) -> None:
        self.user = user
        self.client: Any = None
        self.next_uid = 1
        self.uidvalidity = -1
        self.lost = False
        self.folder: str | None = None  # the folder selected (None: no Junk folder yet)
        self.polled = False  # polled once since the watcher started


class ImapWatcher:
    """Reports each message appearing in *mailbox* of *users* once (all users, one password).

    Messages already there at start are reported by the first poll. ``dispose="delete"``
    flags reported messages ``\\Deleted`` and expunges them.
    """

    def __init__(
        self,
        host: str,
        port: int,
        users: Sequence[str],
        password: str,
        sink: VisibleSink,
        *,
        interval: float = 0.1,
        mailbox: str = "INBOX",
        dispose: Literal["keep", "delete"] = "keep",
        timeout: float = 10,
        ssl_context: ssl.SSLContext | None = None,
        read_marks: bool = False,
        junk: bool = False,
        keep: KeepIf | None = None,
    ) -> None:
        self.keep = keep  # messages it says True of are never deleted (not ours)
        self.read_marks = read_marks  # labelled traffic: fetch whole copies for their marks
        self.junk = junk  # watch the Junk folder (found by LIST): what is there is tagged
        self.host, self.port, self.users = host, port, list(users)
        self._password = password
        self._sink = sink
        self.interval = interval
        self.mailbox = mailbox
        self.dispose = dispose
        self.timeout = timeout
        self._ssl = ssl_context
        self._sessions = [_Session(u) for u in self.users]
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.looked = asyncio.Event()  # set once every mailbox has been polled (what was there)
        self.stats = WatchStats(mode="imap")
        self.last_error = ""

    @property
    def mode(self) -> str:
        return self.stats.mode

    @property
    def resolution_s(self) -> float:
        return self.interval

    async def start(self) -> None:
        """Log every user in and select the mailbox; :class:`WatchError` when one fails."""
        gate = asyncio.Semaphore(CONNECT_AT_ONCE)

        async def connect(s: _Session) -> None:
            async with gate:
                await self._connect(s)

        # One user first: a wrong password fails there, at once, rather than after every
        # user's login has waited out the server's delay for failed logins (Dovecot: 2 s).
        first, rest = self._sessions[:1], self._sessions[1:]
        results = await asyncio.gather(*map(connect, first), return_exceptions=True)
        if not any(isinstance(r, BaseException) for r in results):
            results += await asyncio.gather(*map(connect, rest), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await asyncio.gather(*(self._logout(s) for s in self._sessions))
            if isinstance(failed[0], WatchError):
                raise failed[0]
            raise WatchError(f"IMAP {self.host}:{self.port}: {_why(failed[0])}")
        self._tasks = [
            asyncio.create_task(self._run(s), name=f"imap-watch-{s.user}") for s in self._sessions
        ]

    async def stop(self) -> None:
        """Poll each mailbox one last time, then log out."""
        self._stopping.set()
        if self._tasks:
            await asyncio.gather(*self._tasks)
            self._tasks = []

    async def _connect(self, s: _Session) -> None:
        where = f"IMAP {self.host}:{self.port}"
        s.lost = False

        def lost(exc: Exception | None) -> None:
            s.lost = True
            _fail_pending(client.protocol)

        client = aioimaplib.IMAP4(
            host=self.host,
            port=self.port,
            timeout=self.timeout,
            conn_lost_cb=lost,
            ssl_context=self._ssl,
        )
        s.client = client
        try:
            await client.wait_hello_from_server()
        except (OSError, TimeoutError, aioimaplib.AioImapException) as e:
            raise WatchError(f"cannot connect to {where}: {_why(e)}") from None
        try:
            r = await client.login(s.user, self._password)
            if r.result != "OK":
                raise WatchError(f"{where}: login failed for {s.user}: {_text(r.lines)}")
            r = await self._select(s)
        except (OSError, TimeoutError, aioimaplib.AioImapException) as e:
            raise WatchError(f"{where}: {s.user}: {_why(e)}") from None
        self._uidvalidity(s, r)

    async def _select(self, s: _Session) -> Any:
        """Select the watched folder (for Junk: once one is found); the answer, or None."""
        client, where = s.client, f"IMAP {self.host}:{self.port}"
        folder = self.mailbox
        if self.junk:
            found = junk_folder(_ok(await client.list('""', '"*"'), "LIST").lines, self.mailbox)
            if found is None:  # a server's folder list may lag (Dovecot's list index): try it
                if self.mailbox.lower() == "inbox":
                    return None
                r = await client.select(_quoted(self.mailbox))
                if r.result != "OK":
                    return None
                s.folder = self.mailbox
                return r
            folder = found
        r = await client.select(_quoted(folder))
        if r.result != "OK":
            raise WatchError(f"{where}: cannot select {folder} of {s.user}: {_text(r.lines)}")
        s.folder = folder
        return r

    def _uidvalidity(self, s: _Session, r: Any) -> None:
        if r is None:
            return
        for line in r.lines:
            m = _UIDVALIDITY.search(line) if isinstance(line, bytes) else None
            if m is not None:
                if int(m.group(1)) != s.uidvalidity:
                    s.uidvalidity, s.next_uid = int(m.group(1)), 1  # all UIDs are new
                break

    async def _logout(self, s: _Session) -> None:
        client, s.client = s.client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if client.protocol.state in ("AUTH", "SELECTED") and not s.lost:
                await asyncio.wait_for(client.logout(), min(self.timeout, 2))
        transport = client.protocol.transport
        if transport is not None:
            transport.close()

    async def _run(self, s: _Session) -> None:
        due = time.monotonic()
        failures = 0
        while not self._stopping.is_set():
            try:
                if s.client is None:
                    await self._connect(s)
                await self._poll(s)
                failures = 0
                s.polled = True
                if all(x.polled for x in self._sessions):
                    self.looked.set()
            except (OSError, TimeoutError, aioimaplib.AioImapException, WatchError) as e:
                failures += 1
                self._failed(s, e)
                await self._logout(s)
            pause = self.interval if not failures else min(self.interval * 2**failures, 5.0)
            due = max(due + pause, time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(due - time.monotonic(), 0))
        try:
            if s.client is not None:
                await self._poll(s)
        except (OSError, TimeoutError, aioimaplib.AioImapException, WatchError) as e:
            self._failed(s, e)
        await self._logout(s)

    def _failed(self, s: _Session, e: BaseException) -> None:
        self.stats.errors += 1
        self.last_error = f"{s.user}: {_why(e)}"
        log.warning("IMAP watcher: %s", self.last_error)

    async def _poll(self, s: _Session) -> None:
        client = s.client
        if s.lost:
            raise WatchError("connection lost")
        if s.folder is None:  # no Junk folder at the last look
            self._uidvalidity(s, await self._select(s))
            if s.folder is None:
                return
        r = _ok(await client.noop(), "NOOP")
        now = time.monotonic_ns()
        # Always search: NOOP's EXISTS can't be trusted as a hint, as an EXISTS that Dovecot
        # sends at the end of another command (LDA/LMTP update its index) is dropped by aioimaplib.
        r = _ok(await client.uid_search("UID", f"{s.next_uid}:*", charset=None), "UID SEARCH")
        new = sorted(u for u in parse_search(r.lines) if u >= s.next_uid)
        st = self.stats
        for k in range(0, len(new), FETCH_BATCH):
            batch = new[k : k + FETCH_BATCH]
            what = WHOLE if self.read_marks else FIELDS
            r = _ok(await client.uid("fetch", uid_set(batch), what), "UID FETCH")
            heads = dict(parse_fetch(r.lines))
            kept: set[int] = set()
            for uid in batch:
                if uid not in heads:
                    st.vanished += 1  # expunged by someone else since the search
                    continue
                ident = parse_identity(heads[uid])
                if self.read_marks and ident is not None:
                    marks = marks_of(heads[uid], junk=self.junk)
                    ident = dataclasses.replace(ident, marks=marks)
                st.report(self._sink, ident, now)
                if self.keep is not None and self.keep(ident):
                    kept.add(uid)
            s.next_uid = batch[-1] + 1
            done = [u for u in batch if u in heads and u not in kept]
            if self.dispose == "delete" and done:
                await self._delete(s, done)

    async def _delete(self, s: _Session, uids: list[int]) -> None:
        client = s.client
        which = uid_set(uids)
        _ok(await client.uid("store", which, "+FLAGS.SILENT", r"(\Deleted)"), "UID STORE")
        if client.has_capability("UIDPLUS"):
            _ok(await client.uid("expunge", which), "UID EXPUNGE")
        else:
            _ok(await client.expunge(), "EXPUNGE")


def _fail_pending(protocol: Any) -> None:
    """End the commands waiting for an answer on a lost connection (aioimaplib would let
    them wait for their timeout)."""
    try:
        cmds = [protocol.pending_sync_command, *protocol.pending_async_commands.values()]
        for cmd in cmds:
            if cmd is not None:
                cmd.close(b"connection lost", "KO")
    except AttributeError:  # another aioimaplib: its timeout will do
        pass


def _quoted(folder: str) -> str:
    """*folder* as an IMAP quoted string (aioimaplib sends arguments as they are)."""
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ok(r: Any, command: str) -> Any:
    if r.result != "OK":
        raise WatchError(f"{command}: {_text(r.lines)}")
    return r


def _text(lines: Sequence[Any]) -> str:
    last = lines[-1] if lines else b""
    return bytes(last).decode("utf-8", "replace").strip() or "no reason given"


def _why(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, TimeoutError):
        return "timed out"
    return (str(e) or type(e).__name__).splitlines()[0]
