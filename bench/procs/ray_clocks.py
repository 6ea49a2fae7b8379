"""The clocks of a run on Ray: each node's clock measured against the driver's through one of
its actors (:func:`measure`, at the start and the end of the run), kept per node
(:class:`NodeClock`), and judged the same way for generator and post office actors: a node
whose clock agrees too loosely to time mail is refused at the start (:func:`refusal`), one
that agrees loosely is named in result.json's warnings (:func:`warnings`). A node on the
driver's own host shares its CLOCK_MONOTONIC: nothing to correct, nothing to judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from bench.core.books import unpack
from bench.core.clock_offset import Agreement, Offset, Probe, estimate
from bench.errors import UsageError
from bench.procs.messages import Arrivals
from bench.procs.ray_actors import boot_id

PROBES = 16  # clock round trips per node, at the start and at the end


@dataclass(frozen=True, slots=True)
class Node:
    """A live node of the cluster: Ray's id, its address and CPUs."""

    node_id: str
    ip: str
    cpus: int

    @property
    def label(self) -> str:
        return f"{self.ip} ({self.node_id[:8]})"


def named_node(nodes: list[Node], where: str, flag: str, others: str = "'driver'") -> Node:
    """The one node of *nodes* whose address or id (or id prefix) *where* is; a
    :class:`UsageError` for *flag* naming the cluster's nodes (and the *others* it takes)
    when it names none, or several."""
    hits = [n for n in nodes if n.ip == where or n.node_id.startswith(where)]
    known = ", ".join(f"{n.ip} (id {n.node_id[:12]})" for n in nodes)
    if not hits:
        raise UsageError(
            f"{flag} {where}: no node of the cluster has that address or id",
            f"its nodes: {known}; or give {others}",
        )
    if len(hits) > 1:
        raise UsageError(
            f"{flag} {where}: {len(hits)} nodes have that address",
            f"give a node id (or its first characters) instead: {known}",
        )
    return hits[0]


def shifted(msg: Arrivals, off: Offset) -> Arrivals:
    """*msg*'s times, read on a node's clock, as the driver's clock read them."""
    mail = array("q", (off.to_driver(ns) for ns in unpack(msg.mail_ns)))
    recv = array("q", (off.to_driver(ns) for ns in unpack(msg.received_ns)))
    return replace(msg, mail_ns=mail.tobytes(), received_ns=recv.tobytes())


def get(ref: Any) -> asyncio.Future[Any]:
    """Await a Ray object ref on any event loop (uvloop included)."""
    return asyncio.wrap_future(ref.future())


async def same_host(handle: Any) -> bool:
    """Whether *handle*'s actor runs on the driver's host (the same boot id): one
    CLOCK_MONOTONIC, nothing to correct."""
    where = await get(handle.node.remote())
    return bool(where["boot_id"] == boot_id())


async def measure(handle: Any) -> Offset | None:
    """*handle*'s node's clock against the driver's, :data:`PROBES` round trips (None: gone)."""
    probes = []
    with contextlib.suppress(Exception):  # a node gone at the end: no end offset
        for _ in range(PROBES):
            sent = time.monotonic_ns()
            node_ns = await get(handle.clock.remote())
            probes.append(Probe(sent, node_ns, time.monotonic_ns()))
    return estimate(probes) if probes else None


@dataclass
class NodeClock:
    """A node's clock over the run, as measured through one of its actors."""

    node: Node
    same_clock: bool  # the driver's host: one CLOCK_MONOTONIC, nothing to correct
    start: Offset | None = None
    end: Offset | None = None

    def agreement(self) -> Agreement | None:
        return None if self.start is None else Agreement(self.start, self.end)


def refusal(clocks: Iterable[NodeClock], role: str) -> str | None:
    """Why the run cannot go on (None: it can): the first node, other than the driver's
    host, whose clock agrees with the driver's too loosely to time mail. *role* names what
    runs there ("generator", "post office")."""
    for clock in clocks:
        agreement = clock.agreement()
        if clock.same_clock or agreement is None or agreement.verdict() != "refuse":
            continue
        return (
            f"node {clock.node.label} ({role} actors): its clock agrees with this host's only "
            f"to within {agreement.uncertainty_ns / 1e6:.1f} ms: too loose to time mail"
        )
    return None


def warnings(clocks: Iterable[NodeClock], role: str) -> list[str]:
    """A line for result.json's warnings for each node (other than the driver's host) whose
    clock agrees loosely, over the whole run (start and end)."""
    out = []
    for clock in clocks:
        agreement = clock.agreement()
        warn = agreement.warning(clock.node.label) if agreement is not None else None
        if warn and not clock.same_clock:
            out.append(f"{warn} ({role} actors)")
    return out
