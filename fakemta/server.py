"""The stand-in mail system: an aiosmtpd relay in front of :class:`fakemta.relay.Relay`.

It accepts mail for its relay domains on its submission port, answers 250 once the message is
queued, and relays it after the configured processing delay. Everything binds 127.0.0.1 with an
explicit hostname (no ``getfqdn()`` lookups).
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import Envelope, Session

from fakemta.delays import Delay
from fakemta.fastsmtp import FastSMTP as SMTPServerProtocol
from fakemta.fastsmtp import PipeliningEhlo
from fakemta.relay import QueuedMessage, Relay


@dataclass(frozen=True, slots=True)
class FakeMtaConfig:
    """How the fake MTA listens, what it relays where, and how slowly."""

    relay_host: str
    relay_port: int
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    hostname: str = "mta.local.test"
    relay_domains: tuple[str, ...] = ("remote.test",)
    processing_delay: Delay = field(default_factory=lambda: Delay("const", 0.0))
    delivery_workers: int = 8
    seed: int = 1
    timeout: float = 30.0
    max_attempts: int = 5


class InboundHandler(PipeliningEhlo):
    """aiosmtpd hooks: accept relay-domain recipients, queue DATA with a drawn delay."""

    def __init__(self, config: FakeMtaConfig, relay: Relay) -> None:
        self.domains = frozenset(d.lower() for d in config.relay_domains)
        self.delay = config.processing_delay
        self.rng = random.Random(config.seed)
        self.relay = relay

    async def handle_RCPT(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        domain = address.rpartition("@")[2].lower()
        if domain not in self.domains:
            return f"550 5.7.1 <{address}>: Relay access denied"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(
        self, server: SMTPServerProtocol, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        qid = self.relay.next_qid()
        msg = QueuedMessage(qid, envelope.mail_from or "", list(envelope.rcpt_tos), content)
        self.relay.submit(msg, self.delay.sample(self.rng))
        return f"250 2.0.0 Ok: queued as {qid}"


class FakeMta:
    """One fake MTA: submission server plus relay queue, on the running event loop."""

    def __init__(self, config: FakeMtaConfig) -> None:
        self.config = config
        self.relay = Relay(
            config.relay_host,
            config.relay_port,
            hostname=config.hostname,
            workers=config.delivery_workers,
            timeout=config.timeout,
            max_attempts=config.max_attempts,
        )
        self.handler = InboundHandler(config, self.relay)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    async def start(self) -> int:
        """Start listening and relaying; returns the submission port."""
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()
        cfg = self.config

        def factory() -> Any:
            return SMTPServerProtocol(
                self.handler,
                hostname=cfg.hostname,
                ident="fakemta",
                enable_SMTPUTF8=False,
                decode_data=False,
                loop=loop,
            )

        self._server = await loop.create_server(factory, cfg.listen_host, cfg.listen_port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.relay.start()
        return self.port

    async def stop(self) -> dict[str, object]:
        """Stop accepting and relaying; returns the queue's counts."""
        if self._server is not None:
            self._server.close()
            self._server = None
        await self.relay.stop()
        return self.relay.stats.as_dict()
