"""The run's post office as Ray actors (``mailsla run --ray ADDRESS --ray-postoffice WHERE``):
``postoffice.workers`` post office actors on one chosen node, or on each node of the cluster,
running the very code of a post office worker process (:func:`bench.procs.child._postoffice`,
through :class:`bench.procs.ray_actors.WorkerActor`). Arrivals come back in the same batches
and are joined to submissions by message id, whichever node sent the message and whichever
received it. Each node's clock is measured against the driver's at the start and the end, and
its arrival times are corrected with it, as the generator actors' are; a node whose clock
agrees too loosely is refused at the start, or named in the warnings
(:mod:`bench.procs.ray_clocks`).

Which address the system under test must relay to: the scenario's ``postoffice.listen``, on
the chosen node. A wildcard listen address (``0.0.0.0``) on a node other than the driver's
host is reached at that node's address, which the embedded fake MTA is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.config.scenario import Scenario, procs
from bench.core.correlate import Correlator
from bench.procs.child import PostJob
from bench.procs.messages import Arrivals, FromWorker
from bench.procs.parent import FleetError, PostOfficeFleet
from bench.procs.ray_clocks import (
    Node,
    NodeClock,
    measure,
    named_node,
    refusal,
    same_host,
    shifted,
    warnings,
)
from bench.procs.ray_fleet import RayWorker, spawn_actor

DRIVER = "driver"  # --ray-postoffice's default: the post office runs where mailsla runs
EACH = "each"


def postoffice_nodes(nodes: list[Node], where: str) -> list[Node] | None:
    """The nodes *where* names for the post office: None for "driver" (a local post office),
    every node for "each", else the one node whose address or id (or id prefix) it is.
    Raises :class:`UsageError` naming the cluster's nodes when it names none, or several."""
    if where == DRIVER:
        return None
    if where == EACH:
        return list(nodes)
    return [named_node(nodes, where, "--ray-postoffice", "'driver' or 'each'")]


@dataclass(slots=True)
class PlacedActor:
    """A post office actor: its slot and node, and the port it listens on."""

    k: int
    node: Node
    worker: RayWorker
    port: int = 0


class RayPostOfficeFleet(PostOfficeFleet):
    """``postoffice.workers`` post office actors on each of *nodes*, on one port (the first
    actor's; the others on a node join it with SO_REUSEPORT, as local workers do)."""

    def __init__(
        self, corr: Correlator, sc: Scenario, run_id: str, key: bytes, nodes: list[Node]
    ) -> None:
        super().__init__(corr, sc, run_id, key)
        self.nodes = nodes
        per_node = procs(sc.postoffice.workers)
        self.placement = [n for n in nodes for _ in range(per_node)]
        self.placed: list[PlacedActor] = []
        self.clocks: dict[str, NodeClock] = {}
        self._stopped = False
        self.lost: list[int] = []  # actors that died before the stop

    def workers_wanted(self) -> int:
        return len(self.placement)

    def _spawn(self, k: int, job: PostJob, on_message: Callable[[FromWorker], None]) -> Any:
        node = self.placement[k]
        handle = spawn_actor("postoffice", job, node, f"mailsla-{self.run_id}-postoffice-{k}")
        placed = PlacedActor(k, node, RayWorker(handle, lambda m: None))
        placed.worker.on_message = lambda msg: on_message(self._to_driver(placed, msg))
        self.placed.append(placed)
        return placed.worker

    def _to_driver(self, placed: PlacedActor, msg: FromWorker) -> FromWorker:
        """*msg* with the node's times on the driver's clock (arrivals only)."""
        clock = self.clocks.get(placed.node.node_id)
        off = clock.start if clock is not None and not clock.same_clock else None
        if not isinstance(msg, Arrivals) or off is None or not msg.ids:
            return msg
        return shifted(msg, off)

    async def start(self) -> int:
        port = await super().start()
        for p in self.placed:
            p.port = port
        for p in self.placed:
            if p.node.node_id not in self.clocks:
                self.clocks[p.node.node_id] = NodeClock(p.node, await same_host(p.worker.handle))
        await self._measure("start")
        why = refusal(self.clocks.values(), "post office")
        if why is not None:
            self._stopped = True
            await super().stop()
            raise FleetError(why)
        return port

    async def _measure(self, when: str) -> None:
        for node_id, clock in self.clocks.items():
            live = [p.worker for p in self.placed if p.node.node_id == node_id]
            live = [w for w in live if not w.died]
            if live:
                offset = await measure(live[0].handle)
                if offset is not None:
                    setattr(clock, when, offset)

    @property
    def relay_host(self) -> str:
        """Where the system under test reaches the (first) post office."""
        host = self.sc.postoffice.listen[0]
        first = self.placement[0]
        clock = self.clocks.get(first.node_id)
        if host in ("0.0.0.0", "::") and clock is not None and not clock.same_clock:
            return first.ip
        return "127.0.0.1" if host == "0.0.0.0" else host

    async def stop(self) -> None:
        if not self._stopped and self.clocks:
            with contextlib.suppress(Exception):
                await self._measure("end")
        if not self._stopped:
            self.lost = [p.k for p in self.placed if p.worker.died]
        self._stopped = True
        await super().stop()

    @property
    def lost_reason(self) -> str | None:
        """Why the run is not whole when post office actors died mid-run (None: none did)."""
        if not self.lost:
            return None
        who = ", ".join(f"actor {k} on {self.placement[k].label}" for k in self.lost)
        return (
            f"{len(self.lost)} post office actor(s) died mid-run ({who}): what they took after "
            "their last batch is booked undelivered"
        )

    def info(self) -> dict[str, Any]:
        """result.json's ``run.ray.postoffice``: where each actor ran and on what port, each
        node's clock, and the actors that died mid-run."""
        nodes = []
        for node_id, clock in self.clocks.items():
            agreement = clock.agreement()
            nodes.append(
                {
                    "node_id": node_id,
                    "ip": clock.node.ip,
                    "actors": [p.k for p in self.placed if p.node.node_id == node_id],
                    "same_clock_as_driver": clock.same_clock,
                    "clock": agreement.as_dict() if agreement is not None else None,
                }
            )
        lost = self.lost if self._stopped else [p.k for p in self.placed if p.worker.died]
        return {
            "actors": [
                {"actor": p.k, "node_id": p.node.node_id, "ip": p.node.ip, "port": p.port}
                for p in self.placed
            ],
            "nodes": nodes,
            "lost": lost,
            "warnings": warnings(self.clocks.values(), "post office"),
        }
