"""The selftest's isolation figures: garbage thrown at the post office during a run must not
bend the run's own figures (its late sends and latencies), and what keeping the post office in
processes of its own costs against the post office in the run's loop.

Each round runs the same scenario through ``mailsla run`` three ways, interleaved: isolated
(the default) and clean, isolated with garbage at the post office, and in the run's loop
(``postoffice.isolate = false``) and clean. The garbage: connections that send random bytes,
open and close, and sit idle, bounded in count and time, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from typing import Any

from bench.harness.daemons import free_port
from bench.selftest.figure import Figure, Progress
from bench.selftest.through_cli import run_cli

GARBAGE_CONNECTIONS = 20  # at once; each reconnects when the server hangs up
CHUNK = 4096


async def _throw(port: int, until: float, rng: random.Random) -> int:
    """One garbage connection after another until *until* (monotonic): random bytes, a
    pause, again. Returns the bytes written."""
    sent = 0
    while time.monotonic() < until:
        try:
            _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        try:
            for _ in range(rng.randint(1, 50)):
                if time.monotonic() >= until or w.is_closing():
                    break  # the server hung up on the garbage (its error limit): reconnect
                w.write(rng.randbytes(rng.randint(1, CHUNK)))
                await asyncio.wait_for(w.drain(), 1.0)
                sent += CHUNK
                await asyncio.sleep(rng.random() * 0.01)
        except (OSError, TimeoutError, RuntimeError):  # uvloop: a write on a closed transport
            pass
        finally:
            w.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(w.wait_closed(), 1.0)
    return sent


async def _garbage(port: int, seconds: float, seed: int) -> int:
    until = time.monotonic() + seconds
    rng = random.Random(seed)
    tasks = [_throw(port, until, random.Random(rng.random())) for _ in range(GARBAGE_CONNECTIONS)]
    return sum(await asyncio.gather(*tasks))


def _scenario(name: str, port: int, rate: int, secs: float, isolate: bool) -> str:
    return f"""name = "{name}"
[fakemta]
processing_delay = "const(0ms)"
[postoffice]
listen = "127.0.0.1:{port}"
isolate = {"true" if isolate else "false"}
[load]
rate = {rate}
duration = "{secs}s"
drain = "10s"
sessions = 10
[sla]
profile = "none"
"""


def _figures(doc: dict[str, Any]) -> dict[str, float]:
    m, c = doc["metrics"], doc["counts"]
    return {
        "late": float(c["late"]),
        "late_per_1000": 1000.0 * c["late"] / max(c["sent"], 1),
        "submit_p99": (m["submit_latency"]["percentiles_s"]["99"] or 0.0) * 1e3,
        "submit_max": (m["submit_latency"]["max_s"] or 0.0) * 1e3,
        "send_p99": (m["send_delay"]["percentiles_s"]["99"] or 0.0) * 1e3,
        "send_max": (m["send_delay"]["max_s"] or 0.0) * 1e3,
    }


async def isolation(rounds: int, say: Progress, secs: float, rate: int = 1000) -> list[Figure]:
    """The garbage figures (goal: within noise of a clean run) and the isolation's cost."""
    runs: dict[str, list[dict[str, float]]] = {"clean": [], "garbage": [], "in_loop": []}
    length = 3 * secs
    for i in range(rounds):
        for kind in ("clean", "garbage", "in_loop"):
            port = free_port()
            sc = _scenario(f"selftest-{kind}", port, rate, length, isolate=kind != "in_loop")
            run = asyncio.ensure_future(run_cli(f"isolation-{kind}", sc))
            thrown = 0
            if kind == "garbage":
                await asyncio.sleep(1.0)  # the run is up: its post office listens
                thrown = await _garbage(port, length - 1.0, seed=i)
            doc = await run
            runs[kind].append(_figures(doc))
            extra = f", {thrown // 1024} KiB of garbage" if thrown else ""
            say(f"  isolation round {i + 1}/{rounds} {kind}: {runs[kind][-1]}{extra}")

    def med(kind: str, key: str) -> list[float]:
        return [round(r[key], 3) for r in runs[kind]]

    def note(kind: str) -> str:
        return ", ".join(
            f"{k} {statistics.median(med(kind, k)):.2f}" for k in ("late", "submit_max", "send_max")
        )

    common = f"{rate} msgs/s for {length:g} s, zero processing delay"
    return [
        Figure(
            "garbage at the post office: the run's submit_latency p99 ÷ a clean run's",
            "<= 1.5",
            unit="ratio",
            a_label="with garbage",
            b_label="clean",
            a=med("garbage", "submit_p99"),
            b=med("clean", "submit_p99"),
            note=f"{common}; {GARBAGE_CONNECTIONS} garbage connections; late sends and maxima "
            f"(ms): with garbage {note('garbage')}; clean {note('clean')}",
        ),
        Figure(
            "garbage at the post office: the run's late sends per 1,000 sent",
            "<= 1.0",
            unit="per 1,000",
            a_label="with garbage",
            a=med("garbage", "late_per_1000"),
            value=statistics.median(med("garbage", "late_per_1000")),
            note=f"{common}; clean: {statistics.median(med('clean', 'late_per_1000')):.2f}",
        ),
        Figure(
            "garbage at the post office: send_delay p99 ÷ a clean run's (the post office's "
            "own reading)",
            "",
            unit="ratio",
            a_label="with garbage",
            b_label="clean",
            a=med("garbage", "send_p99"),
            b=med("clean", "send_p99"),
            note=f"reference: the post office stamps arrivals while it reads the garbage too, "
            f"and on a small machine the thrower takes CPU from the system; {common}",
        ),
        Figure(
            "cost of the isolated post office: submit_latency p99, isolated ÷ in the run's loop",
            "",
            unit="ratio",
            a_label="isolated",
            b_label="in the loop",
            a=med("clean", "submit_p99"),
            b=med("in_loop", "submit_p99"),
            note=f"reference; {common}; in the loop (postoffice.isolate = false): "
            f"{note('in_loop')}",
        ),
    ]
