"""The receive lane's Maildir watcher as a Ray actor (``mailsla run --ray ADDRESS
--ray-watcher NODE``): it runs on the node that holds the Maildirs (the mail server's host,
say), reads them there with the watcher a local run uses (:mod:`bench.procs.watch_worker`),
and sends back what became visible in batches, joined here to the receive lane's sends by
message id, whichever node sent them. The node's clock is measured against the driver's at
the start and the end (:mod:`bench.procs.ray_clocks`), and the times it saw mail at are
corrected with it; a clock that agrees too loosely is refused at the start.

:class:`RayMaildirWatcher` stands in for :class:`bench.observe.maildir_watch.MaildirWatcher`
in :class:`bench.observe.mailboxes.Mailboxes`: ``start``, ``stop``, ``mode``,
``resolution_s`` and ``stats``. An actor that dies mid-run is named (:attr:`lost_reason`):
what it saw after its last batch is booked undelivered at the end of the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core.correlate import Correlator
from bench.errors import UsageError
from bench.observe.maildir_watch import WatchError, WatchStats
from bench.procs.messages import Arrivals, Done, Failed, FromWorker, Ready, Stop
from bench.procs.parent import START_TIMEOUT_S, book_arrivals
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
from bench.procs.ray_connect import require_ray
from bench.procs.ray_fleet import RayWorker, spawn_actor
from bench.procs.watch_worker import WatchJob

DRIVER = "driver"  # --ray-watcher's default: the mailboxes are watched where mailsla runs
STOP_TIMEOUT_S = 30.0  # the last look at the mailboxes, then the last batch


def watcher_node(nodes: list[Node], where: str) -> Node | None:
    """The node *where* names for the watcher (None: "driver", a watcher here)."""
    return None if where == DRIVER else named_node(nodes, where, "--ray-watcher")


def check_watcher(sc: Any, where: str) -> None:
    """Refuse ``--ray-watcher`` (other than "driver") where it cannot work: with no inbound
    traffic, or mailboxes watched over IMAP (the driver reaches an IMAP server itself)."""
    if where == DRIVER:
        return
    if "receive" not in sc.directions:
        raise UsageError(
            f"--ray-watcher {where}: the scenario sends no inbound mail (load.direction is "
            f'"{sc.load.direction}"): there are no mailboxes to watch'
        )
    if sc.mailbox.watch != "maildir":
        raise UsageError(
            f'--ray-watcher {where}: mailbox.watch is "{sc.mailbox.watch}": a watcher on a '
            'node reads Maildirs there (mailbox.watch = "maildir"); an IMAP server is '
            "watched from the driver"
        )


class RayMaildirWatcher:
    """One watcher actor on *node*, feeding *corr* (the receive lane's) in batches, then
    *on_batch* (the runner's drain check)."""

    def __init__(
        self,
        node: Node,
        job: WatchJob,
        corr: Correlator,
        on_batch: Callable[[], None],
    ) -> None:
        self.node, self.job, self.corr, self.on_batch = node, job, corr, on_batch
        self.stats = WatchStats(mode="inotify")
        self.worker: RayWorker | None = None
        self.clock: NodeClock | None = None
        self._ready: asyncio.Future[Ready | Failed] | None = None
        self._resolution = 0.0
        self._stopped = False
        self.lost = False  # the actor died before it said Done

    @classmethod
    def for_maildirs(
        cls,
        node: Node,
        maildirs: list[Path],
        junk: list[Path],
        root: Path | None,
        *,
        sc: Any,
        run_id: str,
        key: bytes,
        corr: Correlator,
        on_batch: Callable[[], None],
    ) -> RayMaildirWatcher:
        """The watcher of a scenario's Maildirs (*root*: make them first, below it)."""
        job = WatchJob(
            tuple(map(str, maildirs)),
            tuple(map(str, junk)),
            sc.mailbox.dispose,
            sc.message.mix is not None,
            run_id,
            key,
            str(root) if root is not None else None,
        )
        return cls(node, job, corr, on_batch)

    @property
    def mode(self) -> str:
        return self.stats.mode

    @property
    def resolution_s(self) -> float:
        return self._resolution

    def _on_message(self, msg: FromWorker) -> None:
        if isinstance(msg, Ready | Failed) and self._ready and not self._ready.done():
            self._ready.set_result(msg)
        elif isinstance(msg, Arrivals):
            clock = self.clock
            if clock is not None and not clock.same_clock and clock.start is not None:
                msg = shifted(msg, clock.start)
            book_arrivals(self.corr, self.job.run_id, msg)
            self.stats.seen += len(msg.ids) // 8 + msg.foreign
            self.stats.foreign += msg.foreign
            self.on_batch()
        elif isinstance(msg, Done) and msg.watch is not None:
            self.stats = WatchStats(**msg.watch)

    async def start(self) -> None:
        """Start the actor; :class:`WatchError` when it cannot watch, or its clock is too
        loose to time mail (or it watches the driver's temporary folder from another host)."""
        ray = require_ray()
        self._ready = asyncio.get_running_loop().create_future()
        handle = spawn_actor("watcher", self.job, self.node, f"mailsla-{self.job.run_id}-watcher")
        self.worker = worker = RayWorker(handle, self._on_message)
        where = f"on node {self.node.label}"
        waits: list[asyncio.Future[Any]] = [self._ready, worker.done]
        await asyncio.wait(
            waits,
            timeout=START_TIMEOUT_S,
            return_when=asyncio.FIRST_COMPLETED,
        )
        msg = self._ready.result() if self._ready.done() else None
        if not isinstance(msg, Ready):
            why = msg.why if isinstance(msg, Failed) else "it did not report ready"
            await self._end()
            raise WatchError(f"the watcher actor {where}: {why}")
        self.stats.mode, self._resolution = msg.mode, msg.resolution_s
        try:
            here = await same_host(handle)
        except ray.exceptions.RayError as exc:
            await self._end()
            raise WatchError(f"the watcher actor {where} died as it started: {exc}") from None
        self.clock = clock = NodeClock(self.node, here)
        clock.start = await measure(handle)
        refused = refusal([clock], "watcher")
        if refused is None and self.job.root is None and not clock.same_clock:
            refused = (
                f"node {self.node.label} is another host: it cannot see this host's temporary "
                "Maildirs (set mailbox.maildir to the folder the node's mail system delivers "
                "to, or use --ray-watcher driver)"
            )
        if refused is not None:
            await self._end()
            raise WatchError(refused)

    async def stop(self) -> None:
        """The actor's last look at the mailboxes, its last batch, and its counts."""
        if self._stopped or self.worker is None:
            return
        self._stopped = True
        worker = self.worker
        if self.clock is not None and not worker.died:
            self.clock.end = await measure(worker.handle)
        worker.send(Stop())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker.done), STOP_TIMEOUT_S)
        self.lost = worker.died or not worker.done.done()
        await self._end()

    async def _end(self) -> None:
        self._stopped = True
        if self.worker is not None:
            await self.worker.join(timeout=STOP_TIMEOUT_S)

    @property
    def lost_reason(self) -> str | None:
        """Why the run is not whole when the watcher actor died mid-run (None: it did not)."""
        if not self.lost:
            return None
        return (
            f"the watcher actor on {self.node.label} died mid-run: what it saw after its "
            "last batch is booked undelivered"
        )

    def info(self) -> dict[str, Any]:
        """result.json's ``run.ray.watcher``: where it ran, its node's clock, whether it died."""
        clock = self.clock
        agreement = clock.agreement() if clock is not None else None
        dead = self.lost or (self.worker is not None and self.worker.died)
        return {
            "node_id": self.node.node_id,
            "ip": self.node.ip,
            "same_clock_as_driver": clock.same_clock if clock is not None else None,
            "clock": agreement.as_dict() if agreement is not None else None,
            "lost": dead,
            "warnings": warnings([clock], "watcher") if clock is not None else [],
        }
