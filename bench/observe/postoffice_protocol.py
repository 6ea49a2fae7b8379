"""The post office's side of the conversation: handler hooks (aiosmtpd's shape) that both of
its servers call, :mod:`bench.smtp.server` (the hot path, :func:`protocol_factory`) and aiosmtpd
(the reference, :class:`bench.smtp.aioserver.FastSMTP`).

A recipient is taken when its domain is the office's; a whole message is refused on purpose
(:class:`bench.observe.postoffice_replies.Refusals`) or handed to the office's sink with its
identity, the time of its MAIL FROM and the time its end of data was read (``server.arrival_ns``:
on the hot path, when the chunk holding the command was read). tests/observe/test_fastpost.py
checks the two servers' conversations against each other.

Both hold a session to :data:`POSTOFFICE_LIMITS`: Postfix's (:mod:`bench.smtp.limits`), but for
the message size, :data:`DATA_SIZE_DEFAULT`, above the largest message a scenario may send
(``message.size`` at most 50 MiB, plus the headers on the way): the instrument's own
destination must not be what refuses a message the system under test relayed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from bench.core.message import Identity, parse_identity
from bench.observe.fate_reader import marks_of
from bench.observe.postoffice_replies import DELIVERED, Refusals
from bench.smtp.aioserver import PipeliningEhlo
from bench.smtp.limits import DEFAULT_LIMITS, Limits
from bench.smtp.server import (
    LINE_BUFFER_LIMIT,
    Envelope,
    FastServerProtocol,
    Server,
    Session,
    server_factory,
)

__all__ = [
    "DATA_SIZE_DEFAULT",
    "LINE_BUFFER_LIMIT",
    "POSTOFFICE_LIMITS",
    "ArrivalSink",
    "PostOfficeHandler",
    "protocol_factory",
]

DATA_SIZE_DEFAULT = 64 * 1024 * 1024  # the post office's message size limit
POSTOFFICE_LIMITS = Limits(
    recipients=DEFAULT_LIMITS.recipients,
    line_length=DEFAULT_LIMITS.line_length,
    message_size=DATA_SIZE_DEFAULT,
    errors=DEFAULT_LIMITS.errors,
    idle_timeout=DEFAULT_LIMITS.idle_timeout,
)

ArrivalSink = Callable[[Identity | None, int, int], None]

MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"

log = logging.getLogger(__name__)


class PostOfficeHandler(PipeliningEhlo):
    """Accept mail for *domain*, timestamp MAIL FROM and the end of DATA; *sink* gets
    (identity, both times) for each message received, counted in ``received``."""

    def __init__(
        self,
        domain: str,
        sink: ArrivalSink,
        refusals: Refusals | None = None,
        *,
        read_marks: bool = False,
    ) -> None:
        self.domain = domain.lower()
        self.sink = sink
        self.received = 0
        self.refusals = refusals
        self.read_marks = read_marks  # labelled traffic: read each copy's fate marks

    def handle_MAIL(
        self,
        server: Server,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        envelope.mail_ns = server.arrival_ns
        envelope.mail_from = address
        if mail_options:
            envelope.mail_options.extend(mail_options)
        return MAIL_OK

    def handle_RCPT(
        self,
        server: Server,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address.rpartition("@")[2].lower() != self.domain:
            return f"550 5.1.2 <{address}>: not a domain of this post office"
        envelope.rcpt_tos.append(address)
        return RCPT_OK

    def handle_DATA(self, server: Server, session: Session, envelope: Envelope) -> str:
        received_ns = server.arrival_ns
        if self.refusals is not None:
            refused = self.refusals.reply()
            if refused is not None:
                return refused
        self.received += 1
        try:
            content = envelope.original_content or b""
            identity = parse_identity(content)
            if self.read_marks and identity is not None:
                identity = dataclasses.replace(identity, marks=marks_of(content))
            self.sink(identity, envelope.mail_ns, received_ns)
        except Exception as exc:  # as aiosmtpd: a failing handler is a 500, not a crash
            log.exception("post office sink failed")
            return f"500 5.3.0 Error: ({type(exc).__name__}) sink failed"
        return DELIVERED


def limits_of(
    limits: Limits | None = None, timeout: float | None = None, data_size_limit: int | None = None
) -> Limits:
    """*limits* (default :data:`POSTOFFICE_LIMITS`) with an idle *timeout* and a
    *data_size_limit* when given (ValueError if out of range)."""
    base = POSTOFFICE_LIMITS if limits is None else limits
    return Limits(
        recipients=base.recipients,
        line_length=base.line_length,
        message_size=base.message_size if data_size_limit is None else data_size_limit,
        errors=base.errors,
        idle_timeout=base.idle_timeout if timeout is None else timeout,
    )


def protocol_factory(
    handler: PostOfficeHandler,
    *,
    hostname: str,
    timeout: float | None = None,
    data_size_limit: int | None = None,
    limits: Limits | None = None,
    protocol: type[FastServerProtocol] = FastServerProtocol,
) -> Callable[[], FastServerProtocol]:
    """A ``create_server`` factory of the hot path's connections, all calling *handler*, held to
    :func:`limits_of` (*limits*, *timeout*, *data_size_limit*)."""
    return server_factory(
        handler,
        hostname=hostname,
        banner="ESMTP mailsla post office",
        limits=limits_of(limits, timeout, data_size_limit),
        protocol=protocol,
    )
