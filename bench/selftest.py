"""``mailsla selftest``: mailsla's own speed and memory, measured against anchors side by side.

Every figure is a ratio of two measurements taken in the same run, interleaved A B A B … over
several rounds, and compared by medians (this machine's speed drifts by itself; a ratio of
neighbours is the fairest figure it gives). Anchors: Postfix's ``smtp-source`` and
``smtp-sink``, and a throwaway Postfix relaying the same load as the fake MTA. Nothing is
installed here: a missing anchor is reported with the command that installs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.anchors import (
    INSTALL,
    MSG_LEN,
    WORK,
    Counter,
    SelftestError,
    Sink,
    find_anchor,
    free_port,
    generator_rate,
    smtp_source_rate,
)
from bench.correlate import Correlator
from bench.fleet import PostOfficeFleet
from bench.postfix import ThrowawayPostfix, find_postfix
from bench.scenario import from_dict
from bench.system import ChildFakeMta
from fakemta.delays import Delay
from fakemta.server import FakeMtaConfig


@dataclass
class Figure:
    """One line of the table: A and B measured per round, the ratio of their medians."""

    name: str
    goal: str  # e.g. ">= 2.5"
    unit: str = "msgs/s"
    a_label: str = ""
    b_label: str = ""
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    value: float | None = None  # for absolute figures (latency, memory)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is not None:
            return self.value
        if not self.a or not self.b or statistics.median(self.b) == 0:
            return None
        return statistics.median(self.a) / statistics.median(self.b)

    @property
    def met(self) -> bool | None:
        r = self.ratio
        if r is None:
            return None
        op, limit = self.goal.split()
        return r >= float(limit) if op == ">=" else r <= float(limit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "goal": self.goal,
            "unit": self.unit,
            "a": {
                "label": self.a_label,
                "runs": self.a,
                "median": statistics.median(self.a) if self.a else None,
            },
            "b": {
                "label": self.b_label,
                "runs": self.b,
                "median": statistics.median(self.b) if self.b else None,
            },
            "ratio": self.ratio,
            "met": self.met,
            "note": self.note,
        }


Progress = Callable[[str], None]


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
    async with Sink() as sink:
        for s in (10, 50):
            f = Figure(
                f"generator ÷ smtp-source, into smtp-sink, {s} sessions",
                ">= 2.5",
                a_label="mailsla generator",
                b_label="smtp-source",
            )
            await interleave(
                rounds,
                partial(generator_rate, sink.port, s, secs),
                partial(smtp_source_rate, sink.port, s, n),
                f,
                say,
            )
            figs.append(f)
        f = Figure(
            f"generator: {cores} processes ÷ ({cores} × 1 process), into smtp-sink",
            ">= 0.8",
            a_label=f"{cores} processes",
            b_label=f"{cores} × 1 process",
        )
        await interleave(
            rounds,
            lambda: generator_rate(sink.port, 10, secs, cores),
            lambda: generator_rate(sink.port, 10, secs, 1),
            f,
            say,
        )
        f.b = [v * cores for v in f.b]
        figs.append(f)
        for s in (10, 50):
            for workers in sorted({1, cores}):
                corr = Correlator("selftest", 0)
                fleet = PostOfficeFleet(
                    corr,
                    from_dict(
                        {"name": "selftest-po", "postoffice": {"workers": workers}}, "selftest"
                    ),
                    "selftest",
                )
                po_port = await fleet.start()
                f = Figure(
                    f"post office ({workers} proc.) ÷ smtp-sink, fed by smtp-source, {s} sessions",
                    ">= 0.5",
                    a_label="mailsla post office",
                    b_label="smtp-sink",
                )
                await interleave(
                    rounds,
                    partial(smtp_source_rate, po_port, s, n),
                    partial(smtp_source_rate, sink.port, s, n),
                    f,
                    say,
                )
                await fleet.stop()
                f.note = f"{corr.counts.foreign} messages recorded"
                figs.append(f)
        po1 = next(x for x in figs if x.name.startswith("post office (1 proc.)"))
        if cores > 1:
            poN = next(x for x in figs if x.name.startswith(f"post office ({cores} proc.)"))
            f = Figure(
                f"post office: {cores} processes ÷ ({cores} × 1 process)",
                ">= 0.8",
                a_label=f"{cores} processes",
                b_label=f"{cores} × 1 process",
                a=list(poN.a),
                b=[v * cores for v in po1.a],
            )
            figs.append(f)
    figs.append(await _whole_path(rounds, n // 2, say))
    figs.extend(await _latency_added(say, secs))
    figs.append(await _memory(memory_messages, say))
    return figs


async def _whole_path(rounds: int, n: int, say: Progress) -> Figure:
    f = Figure(
        "whole path: fake MTA ÷ Postfix, relaying the same load",
        ">= 1.0",
        a_label="fakemta (const 0)",
        b_label="postfix 3.x",
    )
    if find_postfix() is None:
        f.note = f"postfix not installed: {INSTALL}"
        return f
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
        await interleave(
            rounds,
            lambda: counter.expect(n, lambda: smtp_source_rate(mta_port, 10, n), 300),
            lambda: counter.expect(n, lambda: smtp_source_rate(pf_port, 10, n), 300),
            f,
            say,
        )
    finally:
        await loop.run_in_executor(None, pf.stop)
        await mta.stop()
        await counter.po.stop()
    return f


async def _run_cli(name: str, toml: str, rss: list[float] | None = None) -> dict[str, Any]:
    """``mailsla run`` in a fresh process, as a user runs it; returns its result.json.
    With *rss*, the process's resident memory (MB) is appended to it twice a second."""
    d = WORK / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "scenario.toml").write_text(toml)
    p = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench",
        "run",
        str(d / "scenario.toml"),
        "--no-live",
        "--out",
        str(d),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )

    async def sample() -> None:
        while rss is not None:
            with contextlib.suppress(OSError):
                rss.append(rss_mb(p.pid))
            await asyncio.sleep(0.5)

    sampler = asyncio.ensure_future(sample())
    _, err = await p.communicate()
    sampler.cancel()
    if p.returncode not in (0, 1):
        raise SelftestError(f"mailsla run ({name}) exited {p.returncode}: {err.decode()[-300:]}")
    doc: dict[str, Any] = json.loads((d / "result.json").read_text())
    return doc


async def _latency_added(say: Progress, secs: float) -> list[Figure]:
    """Zero-delay fake MTA at half its capacity: what mailsla itself adds."""
    common = f"""
[fakemta]
processing_delay = "const(0ms)"
[message]
size = "{MSG_LEN}B"
[sla]
profile = "none"
"""
    doc = await _run_cli(
        "capacity",
        f"""name = "selftest-capacity"
[load]
model = "closed"
sessions = 10
duration = "{secs}s"
drain = "10s"
{common}""",
    )
    # End to end: the queue may still be relaying after the last 250, so count that time too.
    tail = doc["metrics"]["delivery_delay"]["max_s"] or 0.0
    capacity = doc["counts"]["delivered"] / (secs + tail)
    rate = max(capacity / 2, 10.0)
    say(f"  fake MTA capacity {capacity:.0f} msgs/s; measuring at {rate:.0f} msgs/s")
    doc = await _run_cli(
        "latency",
        f"""name = "selftest-latency"
[load]
rate = {rate:.0f}
duration = "{2 * secs}s"
drain = "10s"
sessions = 10
{common}""",
    )
    out = []
    for metric in ("send_delay", "submit_latency"):
        p99 = doc["metrics"][metric]["percentiles_s"]["99"]
        out.append(
            Figure(
                f"latency mailsla adds: {metric} p99 at half the fake MTA's capacity",
                "<= 2.0",
                unit="ms",
                value=None if p99 is None else p99 * 1e3,
                note=f"{rate:.0f} msgs/s, zero processing delay",
            )
        )
    return out


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _memory(messages: int, say: Progress) -> Figure:
    """Resident memory over a long run, in a process of its own: the generator straight into
    mailsla's own post office (every message joined, nothing kept once delivered)."""
    port = free_port()
    rss: list[float] = []
    doc = await _run_cli(
        "memory",
        f"""name = "selftest-memory"
[system]
kind = "smtp"
submit = "127.0.0.1:{port}"
[postoffice]
listen = "127.0.0.1:{port}"
[load]
model = "closed"
sessions = 10
depth = 2
duration = "1h"
drain = "10s"
max_messages = {messages}
[message]
size = "{MSG_LEN}B"
[sla]
profile = "none"
""",
        rss,
    )
    delivered = doc["counts"]["delivered"]
    if not rss:
        return Figure("resident memory", "<= 150", unit="MB", note="no samples")
    peak, quarter, last = max(rss), rss[len(rss) // 4], rss[-1]
    say(
        f"  memory: {delivered:,} delivered; RSS {quarter:.0f} MB at 25 % of the run, "
        f"{last:.0f} MB at the end, peak {peak:.0f} MB"
    )
    return Figure(
        f"resident memory over a {messages:,}-message run (one process)",
        "<= 150",
        unit="MB",
        value=round(peak, 1),
        note=f"RSS {quarter:.0f} MB at 25 % of the run, {last:.0f} MB at the end; "
        f"{delivered:,} delivered",
    )
