"""The actor side of a run on Ray: a long-lived actor runs the very code of a worker process
(:func:`bench.procs.child._generator`, :func:`bench.procs.child._postoffice`, or the Maildir
watcher's, :func:`bench.procs.watch_worker._watcher`) in a thread of its own under uvloop,
talking through a pipe made of two queues instead of an OS pipe. The driver sends it the same
control messages (:class:`~bench.procs.messages.Go`, ``Stop``, ``Cancel``) and long-polls
:meth:`WorkerActor.take` for the same batches and encoded histograms a worker process sends:
a Ray call per batch (every :data:`bench.procs.child.BATCH_S`), never one per message.

This module does not import Ray: :mod:`bench.procs.ray_fleet` wraps :class:`WorkerActor`
with ``ray.remote`` (lazily), and Ray imports the class by name on each node.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from typing import Any

import uvloop

from bench.procs import child, watch_worker

MAINS = {
    "generator": child._generator,
    "postoffice": child._postoffice,
    "watcher": watch_worker._watcher,
}
ENDED = "ended"  # the worker's code returned without saying Done (it crashed): see take()


def boot_id() -> str:
    """This host's boot id: two processes with the same one share CLOCK_MONOTONIC."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:  # not Linux: no proof of one clock
        return f"{socket.gethostname()}-{os.getpid()}"


class QueuePipe:
    """The worker's end of a pipe as :mod:`bench.procs.child` uses one (``send``, ``recv``;
    EOF as :class:`EOFError`), made of two queues that the actor's methods serve."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()  # driver -> worker
        self.outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()  # worker -> driver

    def send(self, msg: Any) -> None:
        self.outbox.put(msg)

    def recv(self) -> Any:
        msg = self.inbox.get()
        if msg is None:
            raise EOFError
        return msg

    def close(self) -> None:
        self.inbox.put(None)


class WorkerActor:
    """A generator (*kind* "generator", job a :class:`~bench.procs.child.GenJob`), a post
    office (*kind* "postoffice", job a :class:`~bench.procs.child.PostJob`) or a Maildir
    watcher (*kind* "watcher", job a :class:`~bench.procs.watch_worker.WatchJob`), started
    at once."""

    def __init__(self, kind: str, job: Any) -> None:
        self.pipe = QueuePipe()
        main = MAINS[kind]
        self.thread = threading.Thread(target=self._run, args=(main, job), name=kind, daemon=True)
        self.thread.start()

    def _run(self, main: Any, job: Any) -> None:
        try:
            uvloop.run(main(job, self.pipe))
        finally:
            self.pipe.outbox.put(ENDED)

    def node(self) -> dict[str, Any]:
        """Where this actor runs: Ray's node id, the host's name and address, the process."""
        import ray

        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "host": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(),  # type: ignore[no-untyped-call,unused-ignore]
            "pid": os.getpid(),
            "boot_id": boot_id(),
        }

    def clock(self) -> int:
        """This host's monotonic clock (the driver times the round trip around it)."""
        return time.monotonic_ns()

    def send(self, msg: Any) -> None:
        """A control message for the worker (Go, Stop, Cancel)."""
        self.pipe.inbox.put(msg)

    def take(self, timeout: float) -> list[Any]:
        """What the worker said since the last call: waits up to *timeout* seconds for the
        first message, then takes all that are there (:data:`ENDED` when its code ended)."""
        out = []
        try:
            out.append(self.pipe.outbox.get(timeout=timeout))
            while True:
                out.append(self.pipe.outbox.get_nowait())
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        self.pipe.close()
