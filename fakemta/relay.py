"""The fake MTA's queue: hold each message for its processing delay, then relay it.

A held message is only an entry in a :class:`bench.timing.pacer.Pacer` (released to the nanosecond,
never early), so long delays at high rates occupy no delivery worker and the configured
distribution is what the destination sees. Delivery workers
keep persistent SMTP connections to the destination and retry deferred mail with backoff.
With ``max_rate``, a message that is ready goes out at the next free slot (one every
``1 / max_rate`` seconds): the hold becomes max(drawn delay, time until the rate allows it), and
the backlog waits as timers too.

A message with one recipient (the common case) goes out on a pipelined client
(:mod:`fakemta.relayclient`): envelope and DATA in one write, the body in another. Profiling
the fake MTA at 2,600 msgs/s showed aiosmtplib's relay taking 42 % of its process: four round
trips, four writes and an address parse per message. A message with several recipients keeps
aiosmtplib, whose per-recipient results let the accepted recipients have it when others are
refused.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from aiosmtplib import (
    SMTP,
    SMTPException,
    SMTPRecipientsRefused,
    SMTPResponseException,
)

from bench.smtp.body import BIG, release_soon
from bench.timing.pacer import Pacer
from fakemta.relayclient import RelayConnection, Sent

log = logging.getLogger("fakemta.relay")


@dataclass(slots=True)
class QueuedMessage:
    """One accepted message waiting in the queue."""

    qid: str
    mail_from: str
    rcpts: list[str]
    content: bytes
    attempts: int = 0
    due_ns: int = 0  # the end of its hold (monotonic), when it was held


@dataclass(slots=True)
class RelayStats:
    """Counts of what the queue did with the mail it accepted."""

    queued: int = 0
    queued_bytes: int = 0  # the content of every message queued: what the clients sent
    relayed: int = 0
    deferred: int = 0
    bounced: int = 0
    holding: int = 0
    holding_bytes: int = 0  # the content of the messages held (the queue's bytes limit)
    rate_limited: int = 0  # messages the max_rate held beyond their drawn delay
    released_early: int = 0  # held messages let go before their delay ended: always 0
    errors: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "queued": self.queued,
            "queued_bytes": self.queued_bytes,
            "relayed": self.relayed,
            "deferred": self.deferred,
            "bounced": self.bounced,
            "in_queue": self.holding,
            "rate_limited": self.rate_limited,
            "released_early": self.released_early,
            "errors": dict(self.errors),
        }


class Relay:
    """Delays and relays queued mail to ``host:port`` over persistent connections."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        hostname: str,
        workers: int,
        timeout: float = 30.0,
        max_attempts: int = 5,
        retry_base: float = 0.5,
        retry_max: float = 30.0,
        max_rate: float | None = None,
        fast: bool = True,
    ) -> None:
        self.host, self.port, self.hostname = host, port, hostname
        self.fast = fast  # False: aiosmtplib for every message (what the pipelined client beat)
        self.workers, self.timeout = workers, timeout
        self.max_attempts, self.retry_base, self.retry_max = max_attempts, retry_base, retry_max
        self.stats = RelayStats()
        self._ready: asyncio.Queue[QueuedMessage] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._ids = itertools.count(1)
        self._stopping = False
        if max_rate is not None and not max_rate > 0:
            raise ValueError(f"max_rate {max_rate!r}: must be > 0 messages per second")
        self._interval = 1.0 / max_rate if max_rate is not None else 0.0
        self._next_slot = 0.0
        self._pacer: Pacer | None = None  # held messages' release, made on first use

    def next_qid(self) -> str:
        return f"{next(self._ids):X}"

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._worker()) for _ in range(self.workers)]

    def submit(self, msg: QueuedMessage, delay: float) -> None:
        """Queue *msg*; it becomes ready for delivery after *delay* seconds, never sooner.
        (The loop's own timers count in the milliseconds of a coarse clock and released
        messages up to 1 ms early: a const(20ms) hold showed a send_delay of 18.99 ms.)"""
        self.stats.queued += 1
        self.stats.holding += 1
        self.stats.holding_bytes += len(msg.content)
        self.stats.queued_bytes += len(msg.content)
        if self._stopping:  # a connection still open at the stop: it stays in the queue
            return
        release = self._gate if self._interval else self._ready.put_nowait
        if delay <= 0:
            release(msg)
            return
        if self._pacer is None:
            self._pacer = Pacer(asyncio.get_running_loop())
        msg.due_ns = time.monotonic_ns() + round(delay * 1e9)
        self._pacer.call_at(msg.due_ns, partial(self._release, msg, release))

    def _release(self, msg: QueuedMessage, release: Callable[[QueuedMessage], None]) -> None:
        """The hold is over: checked on the clock it was set by (counted, not trusted)."""
        if time.monotonic_ns() < msg.due_ns:
            self.stats.released_early += 1
        release(msg)

    def _gate(self, msg: QueuedMessage) -> None:
        """*msg* is ready: hand it to the workers now, or at the next slot max_rate allows."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = self._next_slot
        self._next_slot = max(now, slot) + self._interval
        if slot <= now:
            self._ready.put_nowait(msg)
            return
        if msg.attempts == 0:
            self.stats.rate_limited += 1
        loop.call_at(slot, self._ready.put_nowait, msg)

    async def stop(self) -> None:
        # aiosmtplib can swallow a cancellation that lands mid-command: the flag ends the
        # worker's loop whatever happens to the CancelledError, and the wait is bounded.
        self._stopping = True
        if self._pacer is not None:
            self._pacer.close()  # what is still held stays counted as in the queue
            self._pacer = None
        for t in self._tasks:
            t.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        self._tasks = []

    def _gone(self, msg: QueuedMessage) -> None:
        """*msg* has left the queue (relayed or bounced)."""
        self.stats.holding -= 1
        self.stats.holding_bytes -= len(msg.content)

    def _error(self, key: str) -> None:
        self.stats.errors[key] = self.stats.errors.get(key, 0) + 1

    def _defer(self, msg: QueuedMessage, why: str) -> None:
        msg.attempts += 1
        self._error(why)
        if msg.attempts >= self.max_attempts:
            self.stats.bounced += 1
            self._gone(msg)
            log.warning("bounced %s after %d attempts: %s", msg.qid, msg.attempts, why)
            return
        self.stats.deferred += 1
        backoff = min(self.retry_base * 2 ** (msg.attempts - 1), self.retry_max)
        release = self._gate if self._interval else self._ready.put_nowait
        asyncio.get_running_loop().call_later(backoff, release, msg)

    async def _connect(self) -> SMTP:
        client = SMTP(
            hostname=self.host,
            port=self.port,
            local_hostname=self.hostname,
            timeout=self.timeout,
            start_tls=False,
        )
        await client.connect()
        return client

    async def _worker(self) -> None:
        conn = RelayConnection(self.host, self.port, self.hostname, self.timeout)  # 1 rcpt
        client: SMTP | None = None  # aiosmtplib, for messages with several
        try:
            while not self._stopping:
                msg = await self._ready.get()
                if len(msg.rcpts) == 1 and self.fast:
                    sent = await conn.send(msg.mail_from, msg.rcpts[0], wire(msg.content))
                    self._settle(msg, sent)
                else:
                    client = await self._send_each(client, msg)
                # Waiting for the next one must not keep this one: a big message's content
                # stayed alive until each worker's next message.
                big = len(msg.content) >= BIG
                del msg
                if big:
                    release_soon(BIG)
        finally:
            conn.close()
            if client is not None:
                client.close()

    def _settle(self, msg: QueuedMessage, sent: Sent) -> None:
        if sent.code == 250:
            self.stats.relayed += 1
            self._gone(msg)
        elif sent.code:
            self._settle_refused(msg, sent.code, sent.stage)
        else:  # the connection failed: the next send opens another
            self._defer(msg, sent.error)

    async def _send_each(self, client: SMTP | None, msg: QueuedMessage) -> SMTP | None:
        """*msg* (several recipients) on aiosmtplib; returns the connection to keep."""
        try:
            if client is None or not client.is_connected:
                client = await self._connect()
            await client.sendmail(msg.mail_from, msg.rcpts, msg.content)
        except SMTPRecipientsRefused as exc:
            code = exc.recipients[0].code if exc.recipients else 550
            self._settle_refused(msg, code, "rcpt")
        except SMTPResponseException as exc:
            self._settle_refused(msg, exc.code, type(exc).__name__)
        except (TimeoutError, SMTPException, OSError) as exc:
            if client is not None:
                client.close()
            client = None
            self._defer(msg, type(exc).__name__)
        else:
            self.stats.relayed += 1
            self._gone(msg)
        return client

    def _settle_refused(self, msg: QueuedMessage, code: int, stage: str) -> None:
        if 400 <= code < 500:
            self._defer(msg, f"{stage} {code}")
        else:
            self._error(f"{stage} {code}")
            self.stats.bounced += 1
            self._gone(msg)


def wire(content: bytes) -> bytes:
    """*content* as it goes after DATA, without the final dot: CRLF line endings (bare CR or
    LF made CRLF, as aiosmtplib does), ending in CRLF, leading dots doubled (RFC 5321
    4.5.2)."""
    lf = content.count(b"\n")
    if lf != content.count(b"\r\n") or content.count(b"\r") != lf:
        content = _ENDINGS.sub(b"\r\n", content)
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    if content.startswith(b"."):
        content = b"." + content
    return content.replace(b"\r\n.", b"\r\n..")


_ENDINGS = re.compile(rb"\r\n|\n|\r")
