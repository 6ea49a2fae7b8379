"""The destination post office: an SMTP server that timestamps every arrival.

For each message it records when the relay said MAIL FROM (the SLA's "system starts to
transmit") and when the message was fully received, and hands (identity, both times) to a
callback. Mail without a mailsla identity is passed on as ``None`` (counted as foreign).

Both servers call the same handler (:class:`PostOfficeHandler`, aiosmtpd's hooks):
``server="fast"`` (the default) runs it on :mod:`bench.smtp.server`, a plain asyncio protocol
about three times as fast; ``server="aiosmtpd"`` on aiosmtpd, kept as the reference that
tests/observe/test_fastpost.py compares the fast one with.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from bench.observe.postoffice_protocol import (
    ArrivalSink,
    PostOfficeHandler,
    limits_of,
    protocol_factory,
)
from bench.observe.postoffice_replies import Refusals
from bench.smtp.aioserver import FastSMTP
from bench.smtp.limits import Limits

__all__ = ["ArrivalSink", "Limits", "PostOffice", "PostOfficeHandler"]


class PostOffice:
    """Runs the post office on the running loop at ``host:port`` (0: any).

    *limits*: what a session may ask (default
    :data:`bench.observe.postoffice_protocol.POSTOFFICE_LIMITS`: recipients, line length,
    message size, errors, idle timeout); *timeout* (seconds a connection may stay idle) and
    *data_size_limit* (the largest message), when given, replace those two. Both servers keep
    the same limits. ValueError when one is out of range.
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
        timeout: float | None = None,
        data_size_limit: int | None = None,
        refusals: Refusals | None = None,
        limits: Limits | None = None,
        read_marks: bool = False,
    ) -> None:
        self.handler = PostOfficeHandler(domain, sink, refusals, read_marks=read_marks)
        self.host, self.port, self.hostname = host, port, hostname
        self.reuse_port = reuse_port
        self.server = server
        self.limits = limits_of(limits, timeout, data_size_limit)
        self.timeout, self.data_size_limit = self.limits.idle_timeout, self.limits.message_size
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> int:
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        loop = asyncio.get_running_loop()

        fast = protocol_factory(self.handler, hostname=self.hostname, limits=self.limits)

        def factory() -> Any:
            if self.server == "fast":
                return fast()
            return FastSMTP(
                self.handler,
                hostname=self.hostname,
                ident="mailsla post office",
                enable_SMTPUTF8=False,
                decode_data=False,
                limits=self.limits,
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
