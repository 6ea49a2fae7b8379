"""Shared fixtures: real servers on port 0 (post office, fake MTA, scripted SMTP)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from bench.config.delays import parse_delay
from bench.core.message import Identity
from bench.observe.postoffice import PostOffice
from fakemta.server import FakeMta, FakeMtaConfig

IN_CI = os.environ.get("CI") == "true"


def need_binary(name: str) -> str:
    """Path of a real program a test needs: skip locally when missing, fail in CI."""
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None
    )
    if path is None:
        msg = f"{name} is not installed"
        if IN_CI:
            pytest.fail(msg + " (CI must install it: see .ci/run)")
        pytest.skip(msg)
    return path


def free_port() -> int:
    """A port that was free a moment ago (for servers that must be told a fixed port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Arrivals:
    """What a post office saw; ``wait(n)`` returns once n arrivals are in."""

    items: list[tuple[Identity | None, int, int]] = field(default_factory=list)
    _waiters: list[tuple[int, asyncio.Event]] = field(default_factory=list)

    def sink(self, ident: Identity | None, mail_ns: int, received_ns: int) -> None:
        self.items.append((ident, mail_ns, received_ns))
        for n, event in self._waiters:
            if len(self.items) >= n:
                event.set()

    async def wait(self, n: int, timeout: float = 10.0) -> None:
        if len(self.items) >= n:
            return
        event = asyncio.Event()
        self._waiters.append((n, event))
        async with asyncio.timeout(timeout):
            await event.wait()


@pytest.fixture
def postoffice_server() -> str:
    """Which server the post office runs: "fast" (mailsla's) or "aiosmtpd" (whose handler
    hooks a test can replace to spy or inject replies)."""
    return "fast"


@pytest.fixture
async def postoffice(postoffice_server: str) -> AsyncIterator[tuple[PostOffice, Arrivals]]:
    arrivals = Arrivals()
    po = PostOffice("remote.test", arrivals.sink, server=postoffice_server)  # type: ignore[arg-type]
    await po.start()
    yield po, arrivals
    await po.stop()


@pytest.fixture
def mta_delay() -> str:
    return "const(0ms)"


@pytest.fixture
def mta_workers() -> int:
    return 4


@pytest.fixture
async def fakemta(
    postoffice: tuple[PostOffice, Arrivals], mta_delay: str, mta_workers: int
) -> AsyncIterator[FakeMta]:
    po, _ = postoffice
    mta = FakeMta(
        FakeMtaConfig(
            relay_host="127.0.0.1",
            relay_port=po.port,
            processing_delay=parse_delay(mta_delay),
            delivery_workers=mta_workers,
            max_attempts=3,
        )
    )
    mta.relay.retry_base = 0.05
    await mta.start()
    yield mta
    await mta.stop()


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) for a condition that no event announces, such as a server's counters
    catching up after the peer already saw the reply."""
    async with asyncio.timeout(timeout):
        while not cond():  # noqa: ASYNC110 (no event to wait on: a peer's counter)
            await asyncio.sleep(0.005)


# Tests that measure time, speed or a machine's capacity, or start whole clusters: `make
# pytest` runs them one at a time after the others have run in parallel (pytest-xdist), so
# a neighbour's load cannot move their numbers. A file name alone takes the whole file.
EXCLUSIVE = (
    "tests/selftest/test_selftest.py",  # speed ratios against anchors
    "tests/e2e/test_run.py::test_const_delay_is_measured_within_2_percent",
    "tests/e2e/test_run.py::test_smtp_kind_against_a_separate_fakemta_process",
    "tests/e2e/test_run_faults.py",  # outages and restarts timed in seconds
    "tests/hostile/test_connections.py",  # hundreds of slow and half-open connections
    "tests/verdict/test_compare.py::test_two_runs_of_one_scenario_pass_the_default_tolerances",
    "tests/verdict/test_compare.py::test_run_with_a_baseline_gates_and_writes_junit",
    "tests/procs/test_ray_fleet.py",  # Ray clusters: many processes each
    "tests/procs/test_ray_inbound.py",
    "tests/procs/test_ray_head.py",
    "tests/e2e/test_capacity.py",  # finds a rate and keeps to a time budget
    "tests/e2e/test_capacity_postfix.py",
    "tests/e2e/test_monitor.py",  # outage windows timed in seconds across a SIGKILL
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.nodeid == e or item.nodeid.startswith(e + "::") for e in EXCLUSIVE) or (
            item.nodeid.split("::", 1)[0] in EXCLUSIVE
        ):
            item.add_marker(pytest.mark.exclusive)
