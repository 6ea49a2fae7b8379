"""The fake MTA's plain submission path: mailsla's post office protocol, queueing for the relay.

Profiled at 2,600 msgs/s (half the whole path's capacity on 2 cores), aiosmtpd's machinery was
two thirds of the fake MTA's busy time even with its fast address parser and one write per
pipelined group (:mod:`fakemta.fastsmtp`): a coroutine step per command, a ``readuntil`` per
body line, a timer re-armed per command. Its reply time is part of what mailsla measures
(``service_time``, ``submit_latency``), so the fake MTA takes the post office's protocol
(:mod:`bench.fastpost`, checked against aiosmtpd command by command in tests/test_fastpost.py)
when nothing needs aiosmtpd: no STARTTLS, no AUTH, no local delivery, no faults or outages.
Only two things differ from the post office: a recipient is taken when its domain is relayed
(:data:`fakemta.faults.RELAY_DENIED` otherwise), and a whole message is queued for the relay
(:meth:`fakemta.server.InboundHandler.queue`), whose reply is the end of DATA's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from bench.fastpost import ArrivalSink, PostOfficeProtocol, _Shared, protocol_factory
from bench.message import Identity
from bench.postreplies import RCPT_OK, Refusals, _r
from fakemta.faults import RELAY_DENIED

if TYPE_CHECKING:
    from fakemta.server import InboundHandler


class _Queue:
    """The "office" the protocol's connections share: the handler that queues."""

    domain = ""  # recipients are checked against the handler's relay domains instead
    refusals: Refusals | None = None

    def __init__(self, handler: InboundHandler) -> None:
        self.handler = handler
        self.received = 0
        self.sink: ArrivalSink = _records_nothing


def _records_nothing(identity: Identity | None, mail_ns: int, now_ns: int) -> None:
    raise AssertionError("the fake MTA queues; it records nothing")  # never called


class QueueProtocol(PostOfficeProtocol):
    """One submission connection to the fake MTA."""

    __slots__ = ("_h", "_to")

    def __init__(self, shared: _Shared) -> None:
        super().__init__(shared)
        self._h = cast(_Queue, shared.office).handler
        self._to: list[str] = []

    def _recipient(self, address: str) -> bytes:
        if address.rpartition("@")[2].lower() not in self._h.domains:
            return _r(RELAY_DENIED.format(address))
        if self._rcpts:
            self._to.append(address)
        else:  # the transaction's first: a new list, the last one went with its message
            self._to = [address]
        self._rcpts += 1
        return RCPT_OK

    def _accept(self, mail_from: str, content: bytes, now: int) -> bytes:
        return _r(self._h.queue(mail_from, self._to, content))


def queue_factory(handler: InboundHandler, hostname: str) -> Callable[[], PostOfficeProtocol]:
    """A ``create_server`` factory for the submission port."""
    return protocol_factory(
        _Queue(handler), hostname=hostname, protocol=QueueProtocol, banner="fakemta"
    )
