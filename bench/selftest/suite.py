"""``mailsla selftest``: mailsla's own speed and memory, measured against anchors side by side.

Every figure is a ratio of two measurements taken in the same run, interleaved A B A B … over
several rounds, and compared by medians (this machine's speed drifts by itself; a ratio of
neighbours is the fairest figure it gives). Anchors: Postfix's ``smtp-source`` and
``smtp-sink``, and a throwaway Postfix relaying the same load as the fake MTA. Nothing is
installed here: a missing anchor is reported with the command that installs it.
"""

from __future__ import annotations

import asyncio
import os
import statistics
from collections.abc import Awaitable, Callable
from functools import partial

from bench.config.delays import Delay
from bench.config.scenario import from_dict
from bench.core.correlate import Correlator
from bench.harness.postfix import ThrowawayPostfix, find_postfix
from bench.procs.parent import PostOfficeFleet
from bench.run.system_under_test import ChildFakeMta
from bench.selftest.anchors import (
    INSTALL,
    Counter,
    Sink,
    bare_client_run,
    find_anchor,
    generator_rate,
    generator_run,
    proc_cpu_s,
    smtp_source_rate,
)
from bench.selftest.figure import Figure, Progress
from bench.selftest.isolation import isolation
from bench.selftest.ray_overhead import ray_overhead
from bench.selftest.through_cli import latency_added, memory
from fakemta.server import FakeMtaConfig


async def interleave(
    rounds: int,
    a: Callable[[], Awaitable[float]],
    b: Callable[[], Awaitable[float]],
    fig: Figure,
    say: Progress,
) -> None:
    for i in range(rounds):
        fig.a.append(round(await a(), 1))
        fig.b.append(round(await b(), 1))
        say(f"  {fig.name} round {i + 1}/{rounds}: {fig.a[-1]:.0f} vs {fig.b[-1]:.0f}")


async def run_selftest(
    rounds: int, quick: bool, say: Progress, memory_messages: int = 1_000_000
) -> list[Figure]:
    find_anchor("smtp-source")
    find_anchor("smtp-sink")
    n = 5_000 if quick else 20_000
    secs = 2.0 if quick else 4.0
    cores = os.cpu_count() or 2
    figs: list[Figure] = []
    cpu = CpuPerMessage()
    async with Sink() as sink:
        for s in (10, 50):
            f = Figure(
                f"generator ÷ smtp-source, into smtp-sink, {s} sessions (depth 2)",
                ">= 2.5",
                a_label="mailsla generator",
                b_label="smtp-source",
                note="load.depth 2: the next message's envelope rides with the body before it "
                "(smtp-source does not pipeline)",
            )
            await interleave(
                rounds,
                partial(cpu.generator, sink.port, secs)
                if s == 10
                else partial(generator_rate, sink.port, s, secs),
                partial(smtp_source_rate, sink.port, s, n),
                f,
                say,
            )
            figs.append(f)
        f = Figure(
            "ceiling: a bare pipelined client (records nothing) ÷ smtp-source, 10 sessions",
            "",
            a_label="bare client",
            b_label="smtp-source",
            note="reference: smtp-sink's own limit on this machine, which no client passes",
        )
        await interleave(
            rounds,
            partial(cpu.bare, sink.port, secs),
            partial(smtp_source_rate, sink.port, 10, n),
            f,
            say,
        )
        figs += [f, cpu.figure()]
        figs.extend(await _generator_scaling(rounds, sink.port, secs, cores, say))
        figs.append(await ray_overhead(rounds, sink.port, secs, cores, say))
        figs.extend(await _post_office(rounds, sink.port, n, cores, say))
    figs.extend(await _whole_path(rounds, n // 2, say))
    figs.extend(await latency_added(rounds, say, secs))
    figs.extend(await isolation(rounds, say, secs))
    figs.extend(await memory(memory_messages, say))
    return figs


class CpuPerMessage:
    """Where the generator's time goes: its CPU a message against the bare client's, from the
    same runs as the generator and ceiling figures (10 sessions)."""

    def __init__(self) -> None:
        self.gen: list[float] = []
        self.user: list[float] = []
        self.system: list[float] = []

    async def generator(self, port: int, secs: float) -> float:
        rate, per_cpu_s = await generator_run(port, 10, secs)
        if per_cpu_s > 0:
            self.gen.append(round(1e6 / per_cpu_s, 2))
        return rate

    async def bare(self, port: int, secs: float) -> float:
        rate, user_us, system_us = await bare_client_run(port, 10, secs)
        self.user.append(round(user_us, 2))
        self.system.append(round(system_us, 2))
        return rate

    def figure(self) -> Figure:
        user = statistics.median(self.user) if self.user else 0.0
        system = statistics.median(self.system) if self.system else 0.0
        return Figure(
            "CPU a message while sending, 10 sessions: mailsla generator ÷ the bare client",
            "",
            unit="µs/msg",
            a_label="generator",
            b_label="bare client",
            a=self.gen,
            b=[round(u + s, 2) for u, s in zip(self.user, self.system, strict=True)],
            note=f"reference, where the time goes: the bare client's is {user:.1f} µs user + "
            f"{system:.1f} µs system (one write, one read a message); the generator's counts "
            "its whole process while sending",
        )


async def _generator_scaling(
    rounds: int, port: int, secs: float, cores: int, say: Progress
) -> list[Figure]:
    """N generator processes against N × one, 10 and 50 sessions, in messages per second and
    in messages per CPU-second (what the processes cost each other, whatever the cores left
    free)."""
    figs: list[Figure] = []
    for s in (10, 50):
        raw = Figure(
            f"generator: {cores} processes ÷ ({cores} × 1 process), into smtp-sink, {s} sessions",
            ">= 0.8",
            a_label=f"{cores} processes",
            b_label=f"{cores} × 1 process",
        )
        per_cpu = Figure(
            f"generator: msgs per CPU-second, {cores} processes ÷ 1 process, {s} sessions",
            ">= 0.8",
            unit="msgs/CPU-s",
            a_label=f"{cores} processes",
            b_label="1 process",
            note="the same runs; CPU of the runner and its workers",
        )
        for i in range(rounds):
            many = await generator_run(port, s, secs, cores)
            one = await generator_run(port, s, secs, 1)
            raw.a.append(round(many[0], 1))
            raw.b.append(round(one[0] * cores, 1))
            per_cpu.a.append(round(many[1], 1))
            per_cpu.b.append(round(one[1], 1))
            say(f"  {raw.name} round {i + 1}/{rounds}: {many[0]:.0f} vs {cores} × {one[0]:.0f}")
        figs += [raw, per_cpu]
    return figs


async def _post_office(
    rounds: int, sink_port: int, n: int, cores: int, say: Progress
) -> list[Figure]:
    """The post office (1 and N processes) against smtp-sink, both fed by smtp-source; then N
    processes against N × one, in messages per second and per CPU-second of the post office
    processes."""
    figs: list[Figure] = []
    per_cpu: dict[int, list[float]] = {1: [], cores: []}
    for s in (10, 50):
        for workers in sorted({1, cores}):
            corr = Correlator("selftest", 0)
            fleet = PostOfficeFleet(
                corr,
                from_dict({"name": "selftest-po", "postoffice": {"workers": workers}}, "selftest"),
                "selftest",
                b"",  # smtp-source's mail carries no identity: every message is foreign
            )
            po_port = await fleet.start()
            pids = [w.proc.pid for w in fleet.workers if w.proc.pid is not None]
            started_cpu = sum(proc_cpu_s(pid) for pid in pids)  # start-up left out
            f = Figure(
                f"post office ({workers} proc.) ÷ smtp-sink, fed by smtp-source, {s} sessions",
                ">= 0.5",
                a_label="mailsla post office",
                b_label="smtp-sink",
            )
            await interleave(
                rounds,
                partial(smtp_source_rate, po_port, s, n),
                partial(smtp_source_rate, sink_port, s, n),
                f,
                say,
            )
            cpu = sum(proc_cpu_s(pid) for pid in pids) - started_cpu
            await fleet.stop()
            got = corr.counts.foreign
            f.note = f"{got} messages recorded"
            if cpu > 0:
                per_cpu[workers].append(round(got / cpu, 1))
            figs.append(f)
    if cores > 1:
        po1 = [x for x in figs if x.name.startswith("post office (1 proc.)")]
        poN = [x for x in figs if x.name.startswith(f"post office ({cores} proc.)")]
        figs.append(
            Figure(
                f"post office: {cores} processes ÷ ({cores} × 1 process)",
                ">= 0.8",
                a_label=f"{cores} processes",
                b_label=f"{cores} × 1 process",
                a=[v for x in poN for v in x.a],
                b=[v * cores for x in po1 for v in x.a],
                note="10 and 50 sessions",
            )
        )
        figs.append(
            Figure(
                f"post office: msgs per CPU-second, {cores} processes ÷ 1 process",
                ">= 0.8",
                unit="msgs/CPU-s",
                a_label=f"{cores} processes",
                b_label="1 process",
                a=per_cpu[cores],
                b=per_cpu[1],
                note="the same runs (10 and 50 sessions); CPU of the post office processes",
            )
        )
    return figs


async def _whole_path(rounds: int, n: int, say: Progress) -> list[Figure]:
    figs = [
        Figure(
            f"whole path: fake MTA ÷ Postfix, relaying the same load, {s} sessions",
            ">= 1.0",
            a_label="fakemta (const 0)",
            b_label="postfix 3.x",
        )
        for s in (10, 50)
    ]
    if find_postfix() is None:
        for f in figs:
            f.note = f"postfix not installed: {INSTALL}"
        return figs
    counter = Counter()
    await counter.po.start()
    mta = ChildFakeMta(
        FakeMtaConfig(
            relay_host="127.0.0.1", relay_port=counter.po.port, processing_delay=Delay("const", 0.0)
        )
    )
    mta_port = await mta.start()
    pf = ThrowawayPostfix(f"127.0.0.1:{counter.po.port}")
    loop = asyncio.get_running_loop()
    pf_port = await loop.run_in_executor(None, pf.start)
    try:
        for f, s in zip(figs, (10, 50), strict=True):
            await interleave(
                rounds,
                partial(counter.fed_by_source, mta_port, n, s),
                partial(counter.fed_by_source, pf_port, n, s),
                f,
                say,
            )
    finally:
        await loop.run_in_executor(None, pf.stop)
        await mta.stop()
        await counter.po.stop()
    return figs
