"""Driving one lane of a run: its generator (in this process, or a fleet of worker
processes) working through its share of the schedule."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from functools import partial

from bench.config.scenario import Scenario, procs
from bench.core import schedule
from bench.core.availability import Availability
from bench.core.message import MessageFactory
from bench.core.stages import StageTimes
from bench.load.generator import Generator, make_session
from bench.procs.parent import GeneratorFleet
from bench.procs.ray_fleet import RayGeneratorFleet, RayPlan
from bench.run.lanes import Lane
from bench.run.wiring import inbound_options
from bench.smtp.options import SessionOptions


async def drive_lane(
    lane: Lane,
    sc: Scenario,
    run_id: str,
    opts: SessionOptions,
    lanes: list[Lane],
    availability: Availability | None,
    sending: Callable[[], None],
    key: bytes,
    ray: RayPlan | None = None,
) -> str | None:
    """Send *lane*'s traffic until its schedule ends or it is stopped (``lane.generator.stop``);
    *sending* is called when the first send may start. Returns why it gave up, if it did.
    Raises :class:`bench.errors.StartupError` when worker processes do not start. With *ray*
    each lane's generators are Ray actors on the plan's nodes."""
    load = sc.load
    if lane.direction == "receive":
        opts = inbound_options(opts)
        domain = sc.mailbox.domain
    else:
        domain = sc.postoffice.domain
    if ray is not None:  # each lane's share split over actors (each needs a session)
        actors = RayGeneratorFleet(
            lane.corr,
            sc,
            run_id,
            lane.host,
            lane.port,
            opts,
            key,
            ray.placement[: max(1, lane.sessions)],
            direction=lane.direction,
            lane=lanes.index(lane),
            lanes=len(lanes),
            sessions=lane.sessions,
        )
        lane.generator = actors
        if lane.direction == "receive" and len(lanes) > 1:
            ray.inbound = actors
        else:
            ray.fleet = actors
        await actors.start()
        sending()
        await actors.run()
        return actors.abort_reason
    if procs(load.workers) > 1:  # send lane only (the scenario refuses workers with inbound)
        fleet = GeneratorFleet(
            lane.corr, sc, run_id, lane.host, lane.port, opts, key, sessions=lane.sessions
        )
        lane.generator = fleet
        await fleet.start()
        sending()
        await fleet.run()
        return fleet.abort_reason
    factory = MessageFactory.for_scenario(sc, run_id, key, domain)
    stages = StageTimes(lane.corr.metrics)
    start_ns, start_wall = time.monotonic_ns(), time.time_ns()
    plan = None
    closed_ids = None
    if load.model != "closed":
        offsets = enumerate(schedule.planned_offsets(load, sc.seed))
        plan = schedule.lane(offsets, lane.direction, load.direction, load.receive_share)
    elif len(lanes) > 1:  # closed: the lanes take alternate ids
        closed_ids = itertools.count(lanes.index(lane), len(lanes))
    lane.generator = gen = Generator.for_load(
        load,
        correlator=lane.corr,
        factory=factory,
        session_factory=partial(make_session, load.client, lane.host, lane.port, opts, stages),
        sessions=lane.sessions,
        schedule=plan,
        start_ns=start_ns,
        start_wall_ns=start_wall,
        closed_ids=closed_ids,
        availability=availability,
    )
    sending()
    await gen.run()
    return gen.abort_reason
