"""What the fake MTA does with a connection's recipients and messages (aiosmtpd's handler
hooks, and :meth:`InboundHandler.queue` for :mod:`fakemta.submission` too): recipients in the
relay domains (or, with local delivery, known local users) are taken; a whole message is
queued for the relay, or for local delivery, with a drawn delay, unless the queue is full."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import Envelope, Session

from bench.smtp.aioserver import FastSMTP as SMTPServerProtocol
from bench.smtp.aioserver import PipeliningEhlo
from fakemta.faults import QUEUE_FULL, RELAY_DENIED, FaultStats
from fakemta.maildir import LocalDelivery, LocalJob
from fakemta.relay import QueuedMessage, Relay

if TYPE_CHECKING:
    from fakemta.server import FakeMtaConfig

USER_UNKNOWN = "550 5.1.1 <{}>: Recipient address rejected: User unknown in virtual mailbox table"


class InboundHandler(PipeliningEhlo):
    """aiosmtpd hooks: accept relay-domain recipients, queue DATA with a drawn delay; with
    *local*, also accept known local users and hand their copy to the local MDA."""

    def __init__(
        self,
        config: FakeMtaConfig,
        relay: Relay,
        local: LocalDelivery | None = None,
        *,
        relaying: bool = True,
        hide_auth: bool = False,
        stats: FaultStats | None = None,
    ) -> None:
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
        self.queue_limit = config.queue_limit
        self.stats = stats if stats is not None else FaultStats()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        lines = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if self.hide_auth:  # no users to log in as: do not offer aiosmtpd's always-failing AUTH
            lines = [line for line in lines if not line.startswith("250-AUTH")]
        return lines

    async def handle_RCPT(
        self,
        server: SMTPServerProtocol,
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
            user = self.users.get(local.lower())
            if user is None:
                self.local.stats.unknown_user += 1
                return USER_UNKNOWN.format(address)
            rcpts: list[tuple[str, str]] | None = getattr(envelope, "local_rcpts", None)
            if rcpts is None:
                rcpts = envelope.local_rcpts = []  # type: ignore[attr-defined]
            rcpts.append((user, address))
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(
        self, server: SMTPServerProtocol, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        local = getattr(envelope, "local_rcpts", None)
        if local is None:
            return self.queue(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        if self._full():
            return QUEUE_FULL
        return self._data_local(envelope, self.relay.next_qid(), content, local)

    def queue(self, mail_from: str, rcpts: list[str], content: bytes) -> str:
        """Queue a message for relaying (all of *rcpts* in the relay domains; the list is
        kept); returns the reply to its end of DATA."""
        if self._full():
            return QUEUE_FULL
        qid = self.relay.next_qid()
        self.relay.submit(
            QueuedMessage(qid, mail_from, rcpts, content), self.delay.sample(self.rng)
        )
        return f"250 2.0.0 Ok: queued as {qid}"

    def _full(self) -> bool:
        """The queue limit is reached (and counted as such)."""
        if self.queue_limit is None:
            return False
        held = self.relay.stats.holding
        if self.local is not None:
            held += self.local.stats.holding
        if held < self.queue_limit:
            return False
        self.stats.queue_full += 1
        return True

    def _data_local(
        self, envelope: Envelope, qid: str, content: bytes, local: list[tuple[str, str]]
    ) -> str:
        assert self.local is not None
        mail_from = envelope.mail_from or ""
        if len(local) < len(envelope.rcpt_tos):
            mine = {addr for _, addr in local}
            remote = [r for r in envelope.rcpt_tos if r not in mine]
            self.relay.submit(
                QueuedMessage(qid, mail_from, remote, content), self.delay.sample(self.rng)
            )
        once = list({user: (user, addr) for user, addr in local}.values())  # one copy per box
        job = LocalJob(qid, mail_from, once, content)
        self.local.submit(job, self.local_delay.sample(self.local_rng))
        return f"250 2.0.0 Ok: queued as {qid}"
