"""The post office's hot path: :mod:`bench.smtp.server`'s SMTP, recording every arrival.

A recipient is taken when its domain is the office's; a whole message is refused on purpose
(:class:`bench.observe.postoffice_replies.Refusals`) or handed to the office's sink with its
identity, the time of its MAIL FROM and the time its end of data was read.
tests/observe/test_fastpost.py checks the conversation against aiosmtpd's
(:mod:`bench.observe.postoffice` with ``server="aiosmtpd"``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol, cast

from bench.core.message import Identity, parse_identity
from bench.observe.postoffice_replies import DELIVERED, Refusals
from bench.smtp.replies import RCPT_OK, Shared, reply_line
from bench.smtp.server import (
    DATA_SIZE_DEFAULT,
    LINE_BUFFER_LIMIT,
    FastServerProtocol,
    server_factory,
)

__all__ = [
    "DATA_SIZE_DEFAULT",
    "LINE_BUFFER_LIMIT",
    "ArrivalSink",
    "Office",
    "PostOfficeProtocol",
    "protocol_factory",
]

ArrivalSink = Callable[[Identity | None, int, int], None]

log = logging.getLogger(__name__)


class Office(Protocol):
    """What connections share: the accepted domain (lower case), the sink, the count, and
    optional :class:`Refusals`."""

    domain: str
    sink: ArrivalSink
    received: int
    refusals: Refusals | None


class PostOfficeProtocol(FastServerProtocol):
    """One SMTP connection to the post office."""

    __slots__ = ("_office",)

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        self._office = cast(Office, shared.owner)

    def _recipient(self, address: str) -> bytes:
        if address.rpartition("@")[2].lower() != self._office.domain:
            return reply_line(f"550 5.1.2 <{address}>: not a domain of this post office")
        self._rcpts += 1
        return RCPT_OK

    def _accept(self, mail_from: str, content: bytes, now: int) -> bytes:
        office = self._office
        if office.refusals is not None:
            refused = office.refusals.reply()
            if refused is not None:
                return refused
        office.received += 1
        try:
            office.sink(parse_identity(content), self._mail_ns, now)
        except Exception as exc:  # as aiosmtpd: a failing handler is a 500, not a crash
            log.exception("post office sink failed")
            return reply_line(f"500 5.3.0 Error: ({type(exc).__name__}) sink failed")
        return DELIVERED


def protocol_factory(
    office: Office,
    *,
    hostname: str,
    timeout: float = 300.0,
    data_size_limit: int = DATA_SIZE_DEFAULT,
    protocol: type[PostOfficeProtocol] = PostOfficeProtocol,
) -> Callable[[], PostOfficeProtocol]:
    """A ``create_server`` factory; *office* is shared by all connections."""
    return server_factory(
        protocol,
        office,
        hostname=hostname,
        timeout=timeout,
        data_size_limit=data_size_limit,
        banner="ESMTP mailsla post office",
    )
