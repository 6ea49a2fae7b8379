"""What the fake MTA does with a connection's recipients and messages, as handler hooks
(aiosmtpd's shape) that both of its servers call: aiosmtpd, and :mod:`bench.smtp.server` on the
plain submission path (:mod:`fakemta.submission`). Recipients in the relay domains (or, with
local delivery, known local users) are taken; a whole message is queued for the relay, or for
local delivery, with a drawn delay, unless the queue is full (its messages or their bytes)."""

from __future__ import annotations

import logging
import random
from typing import Any

from bench.smtp.aioserver import PipeliningEhlo
from bench.smtp.server import Envelope, Server, Session
from fakemta.config import QUEUE_BYTES_LIMIT, QUEUE_LIMIT, FakeMtaConfig
from fakemta.faults import QUEUE_FULL, RELAY_DENIED, FaultStats
from fakemta.filter import FilterStage
from fakemta.maildir import LocalDelivery, LocalJob
from fakemta.relay import QueuedMessage, Relay

USER_UNKNOWN = "550 5.1.1 <{}>: Recipient address rejected: User unknown in virtual mailbox table"
RCPT_OK = "250 2.1.5 Ok"
JUNK_FOLDER = ".Junk"  # Maildir++: the IMAP folder "Junk" (Dovecot's, Courier's layout)

log = logging.getLogger("fakemta.queue")


class InboundHandler(PipeliningEhlo):
    """Accept relay-domain recipients, queue DATA with a drawn delay; with *local*, also
    accept known local users and hand their copy to the local MDA."""

    def __init__(
        self,
        config: FakeMtaConfig,
        relay: Relay,
        local: LocalDelivery | None = None,
        *,
        relaying: bool = True,
        hide_auth: bool = False,
        stats: FaultStats | None = None,
        filter_stage: FilterStage | None = None,
    ) -> None:
        self.filter = filter_stage
        self.domains = frozenset(d.lower() for d in config.relay_domains if relaying)
        self.delay = config.processing_delay
        self.rng = random.Random(config.seed)
        self.relay = relay
        self.local = local
        self.local_domain = config.local_domain.lower()
        self.users = {u.lower(): u for u in config.local_users}
        self.local_delay = config.delivery_delay
        self.local_rng = random.Random(f"{config.seed}-local-{relaying}")
        self.hide_auth = hide_auth
        limit, size = config.queue_limit, config.queue_bytes_limit
        self.queue_limit = QUEUE_LIMIT if limit is None else limit
        self.queue_bytes_limit = QUEUE_BYTES_LIMIT if size is None else size
        self.stats = stats if stats is not None else FaultStats()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        lines = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if self.hide_auth:  # no users to log in as: do not offer aiosmtpd's always-failing AUTH
            lines = [line for line in lines if not line.startswith("250-AUTH")]
        return lines

    def handle_RCPT(
        self,
        server: Server,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        local, _, domain = address.rpartition("@")
        domain = domain.lower()
        if domain not in self.domains:
            if self.local is None or domain != self.local_domain:
                return RELAY_DENIED.format(address)
            if local.lower() not in self.users:
                self.local.stats.unknown_user += 1
                return USER_UNKNOWN.format(address)
        envelope.rcpt_tos.append(address)
        return RCPT_OK

    def handle_DATA(self, server: Server, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        try:
            if self.filter is not None:
                judged = self.filter.judge(content)
                if judged.reply is not None:
                    return judged.reply
                if judged.drop:  # quarantined: taken, and never delivered
                    return f"250 2.0.0 Ok: queued as {self.relay.next_qid()}"
                content = judged.content
                junk = judged.junk
            else:
                junk = None
            if self.local is None:
                return self.queue(mail_from, list(envelope.rcpt_tos), content)
            if self._full(len(content)):
                return QUEUE_FULL
            return self._data_local(mail_from, list(envelope.rcpt_tos), content, junk)
        except Exception as exc:  # as aiosmtpd: a failing handler is a 500, not a crash
            log.exception("queueing a message failed")
            return f"500 5.3.0 Error: ({type(exc).__name__}) queueing failed"

    def queue(self, mail_from: str, rcpts: list[str], content: bytes) -> str:
        """Queue a message for relaying (all of *rcpts* in the relay domains; the list is
        kept); returns the reply to its end of DATA."""
        if self._full(len(content)):
            return QUEUE_FULL
        qid = self.relay.next_qid()
        self.relay.submit(
            QueuedMessage(qid, mail_from, rcpts, content), self.delay.sample(self.rng)
        )
        return f"250 2.0.0 Ok: queued as {qid}"

    def _full(self, size: int) -> bool:
        """A limit of the queue is reached, or would be with *size* bytes more (and counted as
        such; an empty queue takes any message)."""
        stats = self.relay.stats
        held, held_bytes = stats.holding, stats.holding_bytes
        if self.local is not None:
            held += self.local.stats.holding
            held_bytes += self.local.stats.holding_bytes
        if held < self.queue_limit and (
            not held_bytes or held_bytes + size <= self.queue_bytes_limit
        ):
            return False
        self.stats.queue_full += 1
        return True

    def _data_local(
        self, mail_from: str, rcpts: list[str], content: bytes, junk: bytes | None = None
    ) -> str:
        """A message with local recipients (those not in the relay domains), and perhaps
        remote ones too: one copy per local mailbox, the rest relayed. *junk*: the filter
        filed it as junk: the local copies are this, in each mailbox's ``.Junk/`` folder."""
        assert self.local is not None
        qid = self.relay.next_qid()
        local: dict[str, tuple[str, str]] = {}  # one copy per box (its last address)
        remote: list[str] = []
        for rcpt in rcpts:
            user, _, domain = rcpt.rpartition("@")
            if domain.lower() in self.domains:
                remote.append(rcpt)
            else:
                name = self.users[user.lower()]
                local[name] = (name, rcpt)
        if remote:
            self.relay.submit(
                QueuedMessage(qid, mail_from, remote, content), self.delay.sample(self.rng)
            )
        if local:
            boxes = list(local.values())
            if junk is None:
                job = LocalJob(qid, mail_from, boxes, content)
            else:
                job = LocalJob(qid, mail_from, boxes, junk, JUNK_FOLDER)
            self.local.submit(job, self.local_delay.sample(self.local_rng))
        return f"250 2.0.0 Ok: queued as {qid}"
