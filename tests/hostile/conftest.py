"""The hostile-input suite's servers and tools: the fake MTA (its fast path, and aiosmtpd's,
forced by STARTTLS being offered, or by a fault that never fires) and the post office (server
"fast" and "aiosmtpd"), each on a loopback port 0, with Postfix's limits but a one-second idle
timeout; a raw client; and the process's own memory, read from /proc/self/status."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import resource
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest

from bench.config.delays import parse_delay
from bench.config.faults import StageFault
from bench.observe.postoffice import PostOffice
from bench.smtp.limits import Limits
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import Arrivals

IDLE = 1.0  # seconds: the idle timeout of every server here
LIMITS = Limits(idle_timeout=IDLE)  # Postfix's otherwise
BODY = b"From: a@sender.test\r\nSubject: an ordinary message\r\n\r\nhello\r\n"
TARGETS = [
    "fakemta-fast",
    "fakemta-aiosmtpd",
    "fakemta-faults",
    "postoffice-fast",
    "postoffice-aiosmtpd",
]
NEVER = StageFault("mail", "4xx", 0.0)  # forces the fake MTA's faulty protocol, never fires


@dataclass
class Target:
    """One server under attack, and the post office where what it takes arrives."""

    name: str
    port: int
    domain: str  # whose recipients it takes
    hostname: str
    arrivals: Arrivals
    mta: FakeMta | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    async def alive(self) -> None:
        """A new connection is greeted."""
        async with asyncio.timeout(5):
            r, w = await asyncio.open_connection("127.0.0.1", self.port)
            assert (await r.readline()).startswith(b"220 ")
            w.close()

    async def normal_message(self) -> None:
        """A real SMTP client (aiosmtplib) sends an ordinary message, and it arrives."""
        before = len(self.arrivals.items)
        async with aiosmtplib.SMTP(
            hostname="127.0.0.1", port=self.port, start_tls=False, timeout=10
        ) as client:
            errors, _ = await client.sendmail("a@sender.test", [f"u@{self.domain}"], BODY)
        assert errors == {}
        await self.arrivals.wait(before + 1)

    async def after(self) -> None:
        """What each test ends with: the server is alive and mail goes through."""
        await self.alive()
        await self.normal_message()


@pytest.fixture(params=TARGETS)
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    name: str = request.param
    arrivals = Arrivals()
    kind, _, server = name.partition("-")
    po = PostOffice(
        "remote.test",
        arrivals.sink,
        server="aiosmtpd" if kind == "postoffice" and server == "aiosmtpd" else "fast",
        limits=LIMITS,
    )
    await po.start()
    mta = None
    if kind == "fakemta":
        config = FakeMtaConfig(
            relay_host="127.0.0.1",
            relay_port=po.port,
            processing_delay=parse_delay("const(0ms)"),
            delivery_workers=2,
            idle_timeout=IDLE,
            tls=server == "aiosmtpd",  # offered, not required: aiosmtpd, used in plain text
            faults=(NEVER,) if server == "faults" else (),
        )
        mta = FakeMta(config)
        await mta.start()
    port = mta.port if mta is not None else po.port
    hostname = "mta.local.test" if mta is not None else po.hostname
    yield Target(name, port, "remote.test", hostname, arrivals, mta)
    if mta is not None:
        await mta.stop()
    await po.stop()


# -- memory ----------------------------------------------------------------------------
def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field_name} in /proc/self/status")


def _trim() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)


class Memory:
    """The process's resident memory over a block, above what it was at the start, in MiB: its
    peak (VmHWM, reset at the start through /proc/self/clear_refs), or (*peak* False, or where
    the peak cannot be reset) its current size at the end (VmRSS)."""

    def __init__(self, *, peak: bool = True) -> None:
        self.base = 0
        self.peak = peak
        self.peak_resettable = False
        self.end = 0

    def __enter__(self) -> Memory:
        _trim()
        self.base = _status_kib("VmRSS")
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # the high-water mark becomes the current RSS
            self.peak_resettable = True
        except OSError:
            self.peak_resettable = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self.peak and self.peak_resettable:
            self.end = _status_kib("VmHWM")
        else:  # what the servers gave back themselves: no trim here
            gc.collect()
            self.end = _status_kib("VmRSS")

    @property
    def grew_mib(self) -> float:
        return (self.end - self.base) / 1024


@pytest.fixture
def memory() -> Iterator[Memory]:
    yield Memory()


def enough_files(n: int) -> None:
    """Raise this process's open-file limit to at least *n* (skip if it cannot be)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= n:
        return
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip(f"needs {n} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


# -- a raw client ------------------------------------------------------------------------
class Peer:
    """One raw connection: writes bytes, reads replies (a reply is its lines joined by \\n)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port: int, *, greeted: bool = True) -> Peer:
        peer = cls(*await asyncio.open_connection("127.0.0.1", port))
        if greeted:
            assert (await peer.reply()).startswith("220 ")
        return peer

    async def reply(self, timeout: float = 10.0) -> str:
        """One reply; "" at EOF (or a reset)."""
        lines: list[str] = []
        async with asyncio.timeout(timeout):
            while True:
                try:
                    line = await self.r.readline()
                except ConnectionError:
                    line = b""
                if not line:
                    break
                lines.append(line.decode("latin-1").rstrip("\r\n"))
                if line[3:4] != b"-":
                    break
        return "\n".join(lines)

    async def replies(self, n: int, timeout: float = 10.0) -> list[str]:
        return [await self.reply(timeout) for _ in range(n)]

    async def until_closed(self, timeout: float = 10.0) -> list[str]:
        """Every reply until the server closes the connection."""
        out: list[str] = []
        while reply := await self.reply(timeout):
            out.append(reply)
        return out

    async def send(self, data: bytes) -> None:
        self.w.write(data)
        await self.w.drain()

    async def cmd(self, line: bytes | str) -> str:
        await self.send((line.encode("latin-1") if isinstance(line, str) else line) + b"\r\n")
        return await self.reply()

    def close(self) -> None:
        self.w.close()
