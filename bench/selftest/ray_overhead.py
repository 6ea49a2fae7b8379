"""The selftest's figure for runs on Ray: N generator actors ÷ N generator processes, into
smtp-sink, interleaved round by round, on a Ray instance of this host alone. Ray's overhead
is measured, not assumed: the actors run the same generator code as the processes and ship
the same batches, a Ray call per batch, never one per message."""

from __future__ import annotations

import os

from bench.errors import UsageError
from bench.procs.ray_clocks import Node
from bench.procs.ray_connect import INSTALL_HINT, LOOPBACK_ENV, connect, require_ray
from bench.procs.ray_fleet import RayPlan
from bench.run.wiring import ray_placement
from bench.selftest.anchors import generator_run
from bench.selftest.figure import Figure, Progress

SESSIONS = 10


async def ray_overhead(rounds: int, port: int, secs: float, cores: int, say: Progress) -> Figure:
    """Messages a second of *cores* Ray actors ÷ *cores* worker processes, 10 sessions."""
    f = Figure(
        f"Ray: {cores} generator actors ÷ {cores} generator processes, into smtp-sink, "
        f"{SESSIONS} sessions",
        ">= 0.9",
        a_label=f"{cores} Ray actors",
        b_label=f"{cores} processes",
    )
    try:
        nodes = start_local(cores)
    except UsageError:
        f.note = f"not measured: Ray is not installed ({INSTALL_HINT})"
        return f
    try:
        plan = ray_placement(nodes, cores, SESSIONS)
        for i in range(rounds):
            on_ray, _ = await generator_run(port, SESSIONS, secs, cores, ray=RayPlan("", plan))
            local, _ = await generator_run(port, SESSIONS, secs, cores)
            f.a.append(round(on_ray, 1))
            f.b.append(round(local, 1))
            say(f"  {f.name} round {i + 1}/{rounds}: {on_ray:.0f} vs {local:.0f}")
    finally:
        shutdown()
    f.note = "a local Ray instance (one node); the actors' start-up is left out, as for processes"
    return f


def start_local(cpus: int) -> list[Node]:
    """A Ray instance of this host alone (the selftest's), *cpus* CPUs, a small object
    store, no dashboard, on loopback; its one node. Raises :class:`UsageError` without Ray."""
    # Ray's switch for one-host clusters: its nodes then take 127.0.0.1, not the host's
    # interface address (read when Ray is imported: set before that)
    os.environ.setdefault(LOOPBACK_ENV, "0")
    ray = require_ray()
    ray.init(
        address="local",  # a new instance, whatever RAY_ADDRESS or the last `ray start` says
        num_cpus=cpus,
        object_store_memory=80 * 1024 * 1024,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        configure_logging=False,
    )
    return connect("auto")


def shutdown() -> None:
    """Leave the Ray cluster (and stop a local instance this process started)."""
    require_ray().shutdown()
