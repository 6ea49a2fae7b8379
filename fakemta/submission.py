"""The fake MTA's plain submission path: :mod:`bench.smtp.server` calling the fake MTA's handler.

Profiled at 2,600 msgs/s (half the whole path's capacity on 2 cores), aiosmtpd's machinery was
two thirds of the fake MTA's busy time even with its fast address parser and one write per
pipelined group (:mod:`bench.smtp.aioserver`): a coroutine step per command, a ``readuntil`` per
body line, a timer re-armed per command. Its reply time is part of what mailsla measures
(``service_time``, ``submit_latency``), so the fake MTA takes the post office's SMTP (checked
against aiosmtpd command by command in tests/observe/test_fastpost.py) when nothing needs aiosmtpd:
no STARTTLS, no AUTH, no local delivery, no faults or outages. Both servers call the same
:class:`fakemta.inbound.InboundHandler`: a recipient is taken when its domain is relayed
(:data:`fakemta.faults.RELAY_DENIED` otherwise), and a whole message is queued for the relay.
tests/fakemta/test_fastqueue.py checks this path against the fake MTA's aiosmtpd path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bench.smtp.limits import Limits
from bench.smtp.server import FastServerProtocol, server_factory

if TYPE_CHECKING:
    from fakemta.inbound import InboundHandler


def queue_factory(
    handler: InboundHandler, hostname: str, limits: Limits
) -> Callable[[], FastServerProtocol]:
    """A ``create_server`` factory for the submission port, its sessions held to *limits*."""
    return server_factory(handler, hostname=hostname, banner="fakemta", limits=limits)
