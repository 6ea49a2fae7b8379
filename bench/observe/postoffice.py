"""The destination post office: an SMTP server that timestamps every arrival.

For each message it records when the relay said MAIL FROM (the SLA's "system starts to
transmit") and when the message was fully received, and hands (identity, both times) to a
callback. Mail without a mailsla identity is passed on as ``None`` (counted as foreign).

``server="fast"`` (the default) runs :mod:`bench.observe.postoffice_protocol`, a
plain asyncio protocol about three times as fast; ``server="aiosmtpd"`` runs aiosmtpd with
the hooks below, kept as the reference that tests/observe/test_fastpost.py compares the fast
one with.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from aiosmtpd.smtp import Envelope, Session

from bench.core.message import Identity, parse_identity
from bench.observe.postoffice_protocol import DATA_SIZE_DEFAULT, protocol_factory
from bench.observe.postoffice_replies import Refusals
from bench.smtp.aioserver import FastSMTP as SMTPServerProtocol
from bench.smtp.aioserver import PipeliningEhlo

ArrivalSink = Callable[[Identity | None, int, int], None]


class PostOfficeHandler(PipeliningEhlo):
    """aiosmtpd hooks: accept mail for *domain*, timestamp MAIL FROM and end of DATA."""

    def __init__(self, domain: str, sink: ArrivalSink, refusals: Refusals | None = None) -> None:
        self.domain = domain.lower()
        self.sink = sink
        self.received = 0
        self.refusals = refusals

    async def handle_MAIL(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        setattr(envelope, "mail_ns", time.monotonic_ns())  # noqa: B010 (aiosmtpd envelope is open)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self,
        server: SMTPServerProtocol,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.rpartition("@")[2].lower() != self.domain:
            return f"550 5.1.2 <{address}>: not a domain of this post office"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(
        self, server: SMTPServerProtocol, session: Session, envelope: Envelope
    ) -> str:
        received_ns = time.monotonic_ns()
        mail_ns = getattr(envelope, "mail_ns", received_ns)
        if self.refusals is not None:
            refused = self.refusals.reply()
            if refused is not None:
                return refused.decode().rstrip("\r\n")
        self.received += 1
        self.sink(parse_identity(envelope.original_content or b""), mail_ns, received_ns)
        return "250 2.0.0 Ok: delivered"


class PostOffice:
    """Runs the post office on the running loop at ``host:port`` (0: any).

    *timeout*: seconds a connection may stay idle; *data_size_limit*: largest message.
    """

    def __init__(
        self,
        domain: str,
        sink: ArrivalSink,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        hostname: str = "postoffice.remote.test",
        reuse_port: bool = False,
        server: Literal["fast", "aiosmtpd"] = "fast",
        timeout: float = 300.0,
        data_size_limit: int = DATA_SIZE_DEFAULT,
        refusals: Refusals | None = None,
    ) -> None:
        self.handler = PostOfficeHandler(domain, sink, refusals)
        self.host, self.port, self.hostname = host, port, hostname
        self.reuse_port = reuse_port
        self.server = server
        self.timeout, self.data_size_limit = timeout, data_size_limit
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()

        fast = protocol_factory(
            self.handler,
            hostname=self.hostname,
            timeout=self.timeout,
            data_size_limit=self.data_size_limit,
        )

        def factory() -> Any:
            if self.server == "fast":
                return fast()
            return SMTPServerProtocol(
                self.handler,
                hostname=self.hostname,
                ident="mailsla post office",
                enable_SMTPUTF8=False,
                decode_data=False,
                timeout=self.timeout,
                data_size_limit=self.data_size_limit,
                loop=loop,
            )

        self._server = await loop.create_server(
            factory, self.host, self.port, reuse_port=self.reuse_port or None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
