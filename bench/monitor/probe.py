"""The endless low-rate probe load: one message every ``60 / rate`` seconds, each with the
run's identity (``X-Mailsla-Run``/``-Id`` and the keyed ``X-Mailsla-Tag``,
:mod:`bench.core.message`), found again in the users' mailboxes.

Directions follow ``[load] direction`` as in a run: a ``send`` probe is submitted by a user at
``system.submit`` (with ``system.auth`` when set) and its delay is ``send_delay``; a ``receive``
probe comes in from outside at ``system.inbound`` and its delay is ``receive_delay``. With
``"both"``, ``load.receive_share`` of the probes go inbound, spread evenly (probe *n* goes inbound
when ``floor((n + 1) * share)`` steps up), so a restart resumes the same split.

Arrivals are seen by the run's own watchers (:mod:`bench.observe.mailboxes`: inotify on the
users' Maildirs, or IMAP polling with ``mailbox.watch = "imap"``).

Every probe is written to the store *before* it is sent, so a crash at any point leaves it
``inflight`` with its deadline; the restarted monitor (same database: same run id, secret and
sequence) resolves it when it arrives, or counts it lost at its deadline. Messages that are not
ours, or whose tag is not genuine, are left alone; ours are deleted once seen unless
``monitor.delete_seen = false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Callable
from typing import Any

import aiosmtplib

from bench.config.scenario import Scenario
from bench.core.message import Identity, MessageFactory
from bench.monitor.store import NS, Probe, Store
from bench.observe.imap_watch import ImapWatcher
from bench.observe.mailboxes import Mailboxes
from bench.smtp.options import SessionOptions

STOP_GRACE_S = 5.0  # on a stop, sends in progress get this long, then are cancelled
FIRST_LOOK_S = 30.0  # at most this long for the IMAP watcher's first look at every mailbox


def _stage(exc: BaseException) -> tuple[str, bool]:
    """(SMTP stage, connection-level?) of a failed send."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused | aiosmtplib.SMTPRecipientRefused):
        return "rcpt", False
    if isinstance(exc, aiosmtplib.SMTPSenderRefused):
        return "mail", False
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return "data", False
    if isinstance(exc, aiosmtplib.SMTPHeloError):
        return "ehlo", False
    if isinstance(exc, aiosmtplib.SMTPConnectResponseError):
        return "banner", False
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        return "connect", True
    return "connection", True  # disconnects and timeouts


def direction_of(seq: int, direction: str, share: float) -> str:
    """The direction of probe *seq* under ``load.direction`` and ``load.receive_share``."""
    if direction != "both":
        return direction
    return "receive" if math.floor((seq + 1) * share) > math.floor(seq * share) else "send"


class Monitor:
    def __init__(
        self,
        sc: Scenario,
        store: Store,
        clock: Callable[[], int] = time.time_ns,
        credentials: tuple[str, str] | None = None,
        imap_password: str | None = None,
    ) -> None:
        # The run's watchers dispose of what they report unless kept: ours go when seen
        # (monitor.delete_seen), everything else stays.
        # monitor.poll_interval: how often IMAP mailboxes are polled.
        dispose = "delete" if sc.monitor.delete_seen else "keep"
        box = {"dispose": dispose, "poll_interval": sc.monitor.poll_interval}
        sc = sc.model_copy(update={"mailbox": sc.mailbox.model_copy(update=box)})
        self.imap_password = imap_password
        self.sc, self.store, self.clock = sc, store, clock
        self.credentials = credentials  # system.auth's user and password, for send probes
        tls = sc.system.tls  # off: plain; opportunistic: STARTTLS when offered; required: must
        self.tls: dict[str, Any] = {"start_tls": {"off": False, "required": True}.get(tls)}
        if tls != "off":
            opts = SessionOptions(ca_file=sc.system.ca_file, tls_verify=not sc.system.tls_insecure)
            self.tls["tls_context"] = opts.ssl_context()
        m = sc.monitor
        self.interval = 60.0 / m.rate
        run = store.meta("run") or f"mon-{secrets.token_hex(4)}"
        key = store.meta("key") or secrets.token_hex(16)
        store.set_meta("run", run)
        store.set_meta("key", key)
        self.run, self.key = run, bytes.fromhex(key)
        msg = sc.message  # to the users' own mailboxes (mailbox.domain), never elsewhere
        self.factory = MessageFactory(
            run,
            key=self.key,
            size=msg.size,
            sender=msg.sender,
            domain=sc.mailbox.domain,
            users=msg.users,
            recipients=msg.recipients,
            sizes=msg.sizes,
        )
        row = store.db.execute("SELECT max(CAST(id AS INTEGER)) FROM probes").fetchone()
        self.seq = 0 if row[0] is None else int(row[0]) + 1
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    def _ours(self, ident: Identity | None) -> bool:
        return ident is not None and ident.run == self.run and ident.genuine(self.key)

    def _visible(self, ident: Identity | None, seen_mono: int) -> None:
        """The watchers' sink: resolve a probe of ours seen at *seen_mono* (monotonic ns)."""
        if not self._ours(ident):
            return  # not ours: never touched (the watcher keeps it, see _keep)
        assert ident is not None
        seen = self.clock() - max(time.monotonic_ns() - seen_mono, 0)
        row = self.store.db.execute(
            "SELECT planned_ns FROM probes WHERE id = ?", (str(ident.id),)
        ).fetchone()
        if row is not None:
            late_ns = round(self.sc.monitor.late * NS)
            self.store.arrived(str(ident.id), seen - row[0], seen, late_ns)

    async def _look(self) -> Mailboxes:
        """Start the run's watcher on the users' mailboxes and wait (bounded) until it has
        reported what is already there: a probe that arrived while no monitor ran is resolved
        before any deadline is judged."""
        boxes = Mailboxes(self.sc, self._visible, self.imap_password, keep=self._keep)
        await boxes.start()
        w = boxes.watcher
        if isinstance(w, ImapWatcher):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(w.looked.wait(), FIRST_LOOK_S)
        return boxes

    def _keep(self, ident: Identity | None) -> bool:
        return not self._ours(ident)

    async def run_forever(self) -> None:
        """Probe, watch and expire until :attr:`stop` is set; gives sends in progress a grace
        (then cancels them), then takes a last look at the mailboxes."""
        boxes = await self._look()
        try:
            next_at = time.monotonic()
            while not self.stop.is_set():
                now = self.clock()
                self.store.expire(now)
                # the windows whose probes may still resolve (a deadline back) decide outages
                since = self.store.window_of(now - round(self.sc.monitor.deadline * NS)) - 1
                self.store.refresh_outages(since, self.store.window_of(now) + 1)
                t = asyncio.create_task(self._probe(self.seq))
                self.tasks.add(t)
                t.add_done_callback(self.tasks.discard)
                self.seq += 1
                next_at += self.interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), max(next_at - time.monotonic(), 0))
            if self.tasks:  # sends in progress: a grace, then cancelled (a silent server)
                _, pending = await asyncio.wait(self.tasks, timeout=STOP_GRACE_S)
                for t in pending:
                    t.cancel()
                if pending:
                    await asyncio.wait(pending)
        finally:
            await boxes.stop()

    async def _probe(self, seq: int) -> None:
        m, sys = self.sc.monitor, self.sc.system
        direction = direction_of(seq, self.sc.load.direction, self.sc.load.receive_share)
        planned = self.clock()
        users = list(self.factory.user_ids(seq))
        self.store.add_probe(
            Probe(str(seq), direction, users[0], planned, planned + round(m.deadline * NS))
        )
        target = sys.submit if direction == "send" else sys.inbound
        assert target is not None  # cli.monitor checks the address each direction needs
        auth: dict[str, str] = {}
        if direction == "send" and self.credentials is not None:
            auth = {"username": self.credentials[0], "password": self.credentials[1]}
        body = self.factory.build(seq, self.factory.recipients_of(seq), planned)
        t0 = time.monotonic_ns()
        try:
            await aiosmtplib.send(
                body,
                sender=self.sc.message.sender,
                recipients=self.factory.recipients_of(seq),
                hostname=target[0],
                port=target[1],
                local_hostname=sys.ehlo,
                timeout=min(m.deadline, self.sc.load.timeout),  # a command's reply, as in a run
                **self.tls,
                **auth,  # type: ignore[arg-type]
            )
        except asyncio.CancelledError:
            self.store.cancelled(str(seq), self.clock())  # stopping: not the system's fault
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            stage, conn = _stage(exc)
            self.store.failed(str(seq), stage, conn, self.clock())
            return
        self.store.sent(str(seq), time.monotonic_ns() - t0)
