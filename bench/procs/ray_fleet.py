"""The driver's side of a run on Ray: a fleet of generator actors that looks like one
generator, as :class:`bench.procs.parent.GeneratorFleet` does for worker processes (it is
one, with its workers made actors). Each actor runs where the plan puts it
(:class:`Placement`), pinned to its node; each node's clock is measured against the driver's
at the start and the end (:mod:`bench.core.clock_offset`) and its times are corrected with
it. An actor that dies mid-run is reported with its share, booked as the parent books a
dead worker process.

Joining the cluster is :mod:`bench.procs.ray_connect`'s; Ray is imported only when a run
asks for it (:func:`bench.procs.ray_connect.require_ray`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from bench.core.books import unpack
from bench.core.clock_offset import Offset
from bench.core.correlate import Correlator
from bench.procs.child import GenJob
from bench.procs.messages import Batch, Cancel, Died, Done, Failed, FromWorker, Go, ToWorker
from bench.procs.parent import FleetError, GeneratorFleet
from bench.procs.ray_actors import ENDED, WorkerActor
from bench.procs.ray_clocks import Node, NodeClock, measure, refusal, same_host, warnings
from bench.procs.ray_clocks import get as _get
from bench.procs.ray_connect import require_ray
from bench.smtp.options import SessionOptions

POLL_S = 0.2  # how long one take() call waits for the worker's next message


@dataclass
class RayPlan:
    """A run on Ray: the cluster's address, the node of each generator actor, and (once the
    lanes start) their fleets, whose :meth:`RayGeneratorFleet.info` goes into result.json:
    the send lane's (or a receive-only run's), and with both lanes the receive lane's as
    ``inbound``."""

    address: str
    placement: list[Node]
    fleet: RayGeneratorFleet | None = None
    inbound: RayGeneratorFleet | None = None  # the receive lane's, when there are two lanes
    # --ray-postoffice: where, its nodes (None: here), its actors (procs/ray_postoffice.py)
    postoffice_where: str = "driver"
    postoffice: list[Node] | None = None
    postoffice_fleet: Any = None
    # --ray-watcher: where, its node (None: here), its actor (procs/ray_watcher.py)
    watcher_where: str = "driver"
    watcher: Node | None = None
    watcher_actor: Any = None

    def info(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"address": self.address}
        if self.fleet is not None:
            doc.update(self.fleet.info())
        if self.inbound is not None:
            doc["inbound"] = self.inbound.info()
            doc["warnings"] = [*doc.get("warnings", []), *doc["inbound"]["warnings"]]
        po: dict[str, Any] = {"where": self.postoffice_where}
        if self.postoffice_fleet is not None:
            po.update(self.postoffice_fleet.info())
            doc["warnings"] = [*doc.get("warnings", []), *po.get("warnings", [])]
        doc["postoffice"] = po
        if self.watcher_actor is not None:
            w = {"where": self.watcher_where, **self.watcher_actor.info()}
            doc["watcher"] = w
            doc["warnings"] = [*doc.get("warnings", []), *w["warnings"]]
        return doc


@functools.cache
def _actor_class() -> Any:
    """:class:`WorkerActor` as a Ray actor class (made once)."""
    return require_ray().remote(concurrency_groups={"poll": 1})(WorkerActor)


def spawn_actor(kind: str, job: Any, node: Node, name: str) -> Any:
    """A :class:`WorkerActor` of *kind* for *job*, named *name*, pinned to *node* (never
    restarted: a dead actor is reported, not silently replaced); its handle."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return (
        _actor_class()
        .options(
            num_cpus=0,
            name=name,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node.node_id, soft=False),
            max_restarts=0,
        )
        .remote(kind, job)
    )


@dataclass
class RayWorker:
    """One actor and the task that long-polls it; quacks like :class:`bench.procs.child.Worker`
    (``done``, ``send``, ``join``) for the fleet."""

    handle: Any
    on_message: Callable[[FromWorker], None]
    offset: Offset | None = None  # the node's clock against the driver's (None: the same)
    done: asyncio.Future[Done | Failed | Died] = field(init=False)
    _pump: asyncio.Task[None] = field(init=False)

    def __post_init__(self) -> None:
        self.done = asyncio.get_running_loop().create_future()
        self._pump = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        ray = require_ray()
        while not self.done.done():
            try:
                msgs = await _get(self.handle.take.options(concurrency_group="poll").remote(POLL_S))
            except ray.exceptions.RayError:
                break  # the actor (or its node) died
            for raw in msgs:
                if raw == ENDED:
                    break
                msg = self._to_driver(raw)
                self.on_message(msg)
                if isinstance(msg, Done | Failed):
                    self.done.set_result(msg)
                    return
            else:
                continue
            break
        if not self.done.done():
            self.done.set_result(Died())

    @property
    def died(self) -> bool:
        return self.done.done() and isinstance(self.done.result(), Died)

    def _to_driver(self, msg: FromWorker) -> FromWorker:
        off = self.offset
        if off is None or not isinstance(msg, Batch) or not msg.accepted_ns:
            return msg
        fixed = array("q", (off.to_driver(ns) for ns in unpack(msg.accepted_ns)))
        return dataclasses.replace(msg, accepted_ns=fixed.tobytes())

    def send(self, msg: ToWorker) -> None:
        if isinstance(msg, Go) and self.offset is not None:
            msg = Go(self.offset.to_node(msg.start_ns), msg.start_wall_ns)
        with contextlib.suppress(Exception):  # a dead actor: its end comes through done
            self.handle.send.remote(msg)

    async def join(self, timeout: float = 10.0) -> None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(self._pump), timeout)
        self._pump.cancel()
        with contextlib.suppress(Exception):
            require_ray().kill(self.handle)


class RayGeneratorFleet(GeneratorFleet):
    """Generator actors, one per slot of *placement* (a node for each), splitting one
    schedule as worker processes do."""

    def __init__(
        self,
        corr: Correlator,
        sc: Any,
        run_id: str,
        host: str,
        port: int,
        opts: SessionOptions,
        key: bytes,
        placement: list[Node],
        *,
        direction: str = "send",
        lane: int = 0,
        lanes: int = 1,
        sessions: int = 0,
    ) -> None:
        super().__init__(
            corr,
            sc,
            run_id,
            host,
            port,
            opts,
            key,
            direction=direction,
            lane=lane,
            lanes=lanes,
            sessions=sessions,
        )
        self.placement = placement
        self.n = len(placement)
        self.kind = "generator actor"
        self.clocks: dict[str, NodeClock] = {}
        self.actors: list[RayWorker] = []  # self.workers, typed as what they are

    def _spawn(self, k: int, job: GenJob, on_message: Callable[[FromWorker], None]) -> Any:
        name = f"mailsla-{self.run_id}-{self.direction}-generator-{k}"
        worker = RayWorker(spawn_actor("generator", job, self.placement[k], name), on_message)
        self.actors.append(worker)
        return worker

    def where(self, k: int) -> str:
        return self.placement[k].label

    async def start(self) -> None:
        await super().start()
        for k, w in enumerate(self.actors):
            node = self.placement[k]
            if node.node_id not in self.clocks:
                self.clocks[node.node_id] = NodeClock(node, await same_host(w.handle))
        await self._measure("start")
        for k, w in enumerate(self.actors):
            clock = self.clocks[self.placement[k].node_id]
            if not clock.same_clock:
                w.offset = clock.start
        why = refusal(self.clocks.values(), "generator")
        if why is not None:
            for a in self.actors:
                a.send(Cancel())
            await super().close()
            raise FleetError(why)

    async def _measure(self, when: str) -> None:
        """Each node's offset, through its first actor still alive."""
        for node_id, clock in self.clocks.items():
            ks = [k for k, n in enumerate(self.placement) if n.node_id == node_id]
            live = [self.actors[k] for k in ks if not self.actors[k].died]
            if not live:
                continue
            offset = await measure(live[0].handle)
            if offset is not None:
                setattr(clock, when, offset)

    async def close(self) -> None:
        if self.clocks:
            await self._measure("end")
        await super().close()

    def info(self) -> dict[str, Any]:
        """Which node ran what, the clocks, and the lost shares: result.json's ``run.ray``."""
        nodes = []
        for node_id, clock in self.clocks.items():
            agreement = clock.agreement()
            ks = [k for k, n in enumerate(self.placement) if n.node_id == node_id]
            nodes.append(
                {
                    "node_id": node_id,
                    "ip": clock.node.ip,
                    "cpus": clock.node.cpus,
                    "generators": ks,
                    "shares": [self.share(k) for k in ks],
                    "counts": _summed(self.ended.get(k, {}) for k in ks),
                    "lost": [d["worker"] for d in self.lost if d["worker"] in ks],
                    "same_clock_as_driver": clock.same_clock,
                    "clock": agreement.as_dict() if agreement is not None else None,
                }
            )
        return {
            "actors": self.n,
            "nodes": nodes,
            "lost": list(self.lost),
            "warnings": warnings(self.clocks.values(), "generator"),
        }


def _summed(counts: Iterable[dict[str, int]]) -> dict[str, int]:
    keys = ("planned", "not_sent", "sent", "accepted", "rejected", "failed")
    out = dict.fromkeys(keys, 0)
    for c in counts:
        for key in keys:
            out[key] += c.get(key, 0)
    return out
