"""The selftest's figures measured through ``mailsla run`` in a fresh process, as a user runs
it: the latency mailsla adds, and resident memory over a long run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
from pathlib import Path
from typing import Any

from bench.run.intervallog import HistStats, merged
from bench.selftest.anchors import MSG_LEN, WORK, SelftestError, free_port
from bench.selftest.figure import Figure, Progress


async def run_cli(name: str, toml: str, rss: list[float] | None = None) -> dict[str, Any]:
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


async def latency_added(rounds: int, say: Progress, secs: float) -> list[Figure]:
    """Zero-delay fake MTA at half its capacity: what mailsla itself adds. The p99s are the
    medians of *rounds* runs of 5 × *secs* each (long enough that one stall of this shared
    machine, ~100 ms, moves the p99 of a run no more than its share of the messages)."""
    common = f"""
[fakemta]
processing_delay = "const(0ms)"
[message]
size = "{MSG_LEN}B"
[sla]
profile = "none"
"""
    doc = await run_cli(
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
    names = ("send_delay", "submit_latency", "schedule_lag", "service_time")
    steady: dict[str, list[float]] = {m: [] for m in names}  # after the warm-up
    whole: dict[str, list[float]] = {m: [] for m in names}
    for i in range(rounds):
        doc = await run_cli(
            "latency",
            f"""name = "selftest-latency"
[load]
rate = {rate:.0f}
duration = "{5 * secs}s"
drain = "10s"
sessions = 10
{common}""",
        )
        for m in names:
            v = doc["metrics"][m]["percentiles_s"]["99"]
            if v is not None:
                whole[m].append(v * 1e3)
            w = p99_after(WORK / "latency" / "metrics.hlog", m, WARMUP_S)
            if w is not None:
                steady[m].append(w)
        say(
            f"  latency round {i + 1}/{rounds}: p99 after {WARMUP_S:.0f} s "
            + ", ".join(f"{m} {v[-1]:.2f} ms" for m, v in steady.items() if v)
        )

    def med(m: str, of: dict[str, list[float]]) -> str:
        return f"{statistics.median(of[m]):.2f} ms" if of[m] else "–"

    out = []
    for metric in ("send_delay", "submit_latency"):
        runs = steady[metric]
        out.append(
            Figure(
                f"latency mailsla adds: {metric} p99 at half the fake MTA's capacity",
                "<= 2.0",
                unit="ms",
                a_label="p99 per run",
                a=[round(v, 3) for v in runs],
                value=round(statistics.median(runs), 3) if runs else None,
                note=f"{rate:.0f} msgs/s, zero processing delay; median of {len(runs)} runs, "
                f"after a {WARMUP_S:.0f} s warm-up (whole run: {med(metric, whole)}); in it "
                f"schedule_lag p99 {med('schedule_lag', steady)} (mailsla's own), "
                f"service_time p99 {med('service_time', steady)} (the fake MTA's reply)",
            )
        )
    return out


WARMUP_S = 2.0  # connections opened, caches warm: like wrk2's calibration, left out


def p99_after(hlog: Path, metric: str, skip_s: float) -> float | None:
    """The p99 (ms) of *metric* over the intervals of a run's metrics.hlog that start at or
    after *skip_s* seconds; None when there are none."""
    payloads = []
    for line in hlog.read_text().splitlines():
        if line.startswith(f"Tag={metric},"):
            _, start, _, _, payload = line.split(",", 4)
            if float(start) >= skip_s:
                payloads.append(payload)
    stats = HistStats(merged(payloads))
    return stats.percentile_us(99) / 1e3 if stats.count else None


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process in MB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def memory(messages: int, say: Progress) -> list[Figure]:
    """Resident memory over a long run, in a process of its own: the generator straight into
    mailsla's own post office (every message joined, nothing kept once delivered). Two
    figures: the peak, and the growth from a quarter of the run to its end (flat: at most
    10 %; the leak of ~16 bytes a message fixed on 2026-11-28 grew it by ~30 %)."""
    port = free_port()
    rss: list[float] = []
    doc = await run_cli(
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
        return [Figure("resident memory", "<= 150", unit="MB", note="no samples")]
    peak, quarter, last = max(rss), rss[len(rss) // 4], rss[-1]
    say(
        f"  memory: {delivered:,} delivered; RSS {quarter:.0f} MB at 25 % of the run, "
        f"{last:.0f} MB at the end, peak {peak:.0f} MB"
    )
    growth = Figure(
        "resident memory growth, a quarter of the run to its end (flat)",
        "<= 10",
        unit="%",
        note=f"{quarter:.1f} MB → {last:.1f} MB, {len(rss)} samples every 0.5 s",
    )
    if len(rss) < MIN_GROWTH_SAMPLES:  # a quarter of a short run is still start-up
        growth.note = f"not judged: {len(rss)} samples, a run too short to show a trend"
    else:
        growth.value = round((last - quarter) / quarter * 100, 1)
    return [
        Figure(
            f"resident memory over a {messages:,}-message run (one process)",
            "<= 150",
            unit="MB",
            value=round(peak, 1),
            note=f"RSS {quarter:.0f} MB at 25 % of the run, {last:.0f} MB at the end; "
            f"{delivered:,} delivered",
        ),
        growth,
    ]


MIN_GROWTH_SAMPLES = 20  # 10 s of samples: a quarter of the run is past start-up
