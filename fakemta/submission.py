"""The fake MTA's plain submission path: :mod:`bench.smtp.server`'s SMTP, queueing for the relay.

Profiled at 2,600 msgs/s (half the whole path's capacity on 2 cores), aiosmtpd's machinery was
two thirds of the fake MTA's busy time even with its fast address parser and one write per
pipelined group (:mod:`bench.smtp.aioserver`): a coroutine step per command, a ``readuntil`` per
body line, a timer re-armed per command. Its reply time is part of what mailsla measures
(``service_time``, ``submit_latency``), so the fake MTA takes the post office's SMTP (checked
against aiosmtpd command by command in tests/observe/test_fastpost.py) when nothing needs aiosmtpd:
no STARTTLS, no AUTH, no local delivery, no faults or outages. A recipient is taken when its
domain is relayed (:data:`fakemta.faults.RELAY_DENIED` otherwise), and a whole message is
queued for the relay (:meth:`fakemta.inbound.InboundHandler.queue`, whose reply is the end of
DATA's). tests/fakemta/test_fastqueue.py checks it against the fake MTA's aiosmtpd path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from bench.smtp.replies import RCPT_OK, Shared, reply_line
from bench.smtp.server import FastServerProtocol, server_factory
from fakemta.faults import RELAY_DENIED

if TYPE_CHECKING:
    from fakemta.inbound import InboundHandler

log = logging.getLogger("fakemta.queue")


class QueueProtocol(FastServerProtocol):
    """One submission connection to the fake MTA."""

    __slots__ = ("_h", "_to")

    def __init__(self, shared: Shared) -> None:
        super().__init__(shared)
        self._h = cast("InboundHandler", shared.owner)
        self._to: list[str] = []

    def _recipient(self, address: str) -> bytes:
        if address.rpartition("@")[2].lower() not in self._h.domains:
            return reply_line(RELAY_DENIED.format(address))
        if self._rcpts:
            self._to.append(address)
        else:  # the transaction's first: a new list, the last one went with its message
            self._to = [address]
        self._rcpts += 1
        return RCPT_OK

    def _accept(self, mail_from: str, content: bytes, now: int) -> bytes:
        try:
            return reply_line(self._h.queue(mail_from, self._to, content))
        except Exception as exc:  # as aiosmtpd: a failing handler is a 500, not a crash
            log.exception("queueing a message failed")
            return reply_line(f"500 5.3.0 Error: ({type(exc).__name__}) queueing failed")


def queue_factory(handler: InboundHandler, hostname: str) -> Callable[[], QueueProtocol]:
    """A ``create_server`` factory for the submission port."""
    return server_factory(QueueProtocol, handler, hostname=hostname, banner="fakemta")
