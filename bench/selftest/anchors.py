"""The anchors of ``mailsla selftest``: smtp-source and smtp-sink as subprocesses, a counting
post office, and mailsla's own generator measured the same way."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

from bench.config.scenario import from_dict
from bench.errors import RunError
from bench.observe.postoffice import PostOffice
from bench.procs.ray_fleet import RayPlan
from bench.run.runner import Runner

INSTALL = "apt-get install -y postfix   (smtp-source, smtp-sink and postfix)"
MSG_LEN = 1024
WORK = Path(tempfile.gettempdir()) / "mailsla-selftest"  # the runs' own result.json files


class SelftestError(RunError):
    """An anchor is missing; the message says how to install it."""


def find_anchor(name: str) -> str:
    for p in (f"/usr/sbin/{name}", shutil.which(name)):
        if p and os.path.exists(p):
            return p
    raise SelftestError(f"{name} not found: install it with `{INSTALL}`")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def smtp_source_rate(port: int, sessions: int, n: int) -> float:
    """smtp-source, persistent sessions (-d), 1 KiB: messages per second."""
    exe = find_anchor("smtp-source")
    t = time.monotonic()
    p = await asyncio.create_subprocess_exec(
        exe,
        "-d",
        "-l",
        str(MSG_LEN),
        "-m",
        str(n),
        "-s",
        str(sessions),
        "-f",
        "load@sender.test",
        "-t",
        "user@remote.test",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await p.communicate()
    if p.returncode != 0:
        raise SelftestError(f"smtp-source failed: {err.decode(errors='replace')[-300:]}")
    return n / (time.monotonic() - t)


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (worker processes, once joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


async def generator_rate(port: int, sessions: int, seconds: float, workers: int = 1) -> float:
    """mailsla's generator (pipelined, full recording) into *port*: messages per second."""
    return (await generator_run(port, sessions, seconds, workers))[0]


async def generator_run(
    port: int,
    sessions: int,
    seconds: float,
    workers: int = 1,
    client: str = "pipelined",
    ray: RayPlan | None = None,
) -> tuple[float, float]:
    """mailsla's generator into *port*: (messages per second, messages per CPU-second of the
    runner and its generator processes while sending — their start-up, imports included, is
    left out, as the rate leaves it out). With *ray*: from Ray actors instead."""
    sc = from_dict(
        {
            "name": "selftest-generator",
            "sla": {"profile": "none"},
            "system": {"kind": "smtp", "submit": f"127.0.0.1:{port}"},
            "postoffice": {"listen": f"127.0.0.1:{free_port()}", "workers": 1},
            "load": {
                "model": "closed",
                "sessions": sessions,
                "depth": 2 if client == "pipelined" else 1,
                "workers": workers,
                "client": client,
                "duration": f"{seconds}s",
                "drain": "0s",
            },
            "message": {"size": f"{MSG_LEN}B"},
        },
        "selftest",
    )
    r = Runner(sc, WORK / "gen", None, ray=ray)
    at_start = asyncio.ensure_future(_cpu_when_sending(r))
    res = await r.run()
    cpu = cpu_seconds() - (await at_start if at_start.done() else cpu_seconds())
    if res.status != "completed":
        raise SelftestError(f"generator run {res.status}: {res.reason}")
    accepted = float(res.doc["counts"]["accepted"])
    return accepted / seconds, accepted / cpu if cpu > 0 else 0.0


async def _cpu_when_sending(r: Runner) -> float:
    """:func:`cpu_seconds` as the run starts sending, its worker processes' CPU so far
    included (read from /proc: they are not reaped yet)."""
    # The runner signals nothing here but its phase; a 2 ms poll costs the run nothing.
    while r.phase != "sending":  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    total = cpu_seconds()
    for lane in r.lanes:
        for w in getattr(lane.generator, "workers", ()):
            with contextlib.suppress(OSError, AttributeError, TypeError):
                total += proc_cpu_s(w.proc.pid)
    return total


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_ENVELOPE = b"MAIL FROM:<load@sender.test>\r\nRCPT TO:<user@remote.test>\r\nDATA\r\n"


class _Bare(asyncio.Protocol):
    """The least a pipelined client can do: greet, then for each 354 write the body and the
    next envelope in one write; count the 250s; record nothing."""

    def __init__(self, body: bytes, until: float, done: asyncio.Future[int]) -> None:
        self.body, self.until, self.done = body, until, done
        self.replies = self.sent = self.accepted = 0
        self.buf = b""
        self.transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        lines = (self.buf + data).split(b"\r\n")
        self.buf = lines.pop()
        out = []
        for line in lines:
            if line[3:4] == b"-":
                continue
            self.replies += 1
            if self.replies == 1:
                out.append(b"EHLO bare.test\r\n")
            elif self.replies == 2 or (line[:3] == b"250" and self.sent == 0):
                out.append(_ENVELOPE)
                self.sent = 1
            elif line[:3] == b"354":
                out.append(self.body)
                if time.monotonic() < self.until:
                    out.append(_ENVELOPE)
                    self.sent += 1
            elif self.replies > 2 and (self.replies - 2) % 4 == 0:
                self.accepted += 1
                if self.accepted == self.sent and self.transport is not None:
                    self.transport.close()
        if out and self.transport is not None:
            self.transport.write(b"".join(out))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.accepted)


async def bare_client_run(port: int, sessions: int, seconds: float) -> tuple[float, float, float]:
    """The ceiling a client meets in smtp-sink here: :class:`_Bare` on *sessions*
    connections for *seconds*. Returns messages per second, and the CPU this process spent a
    message meanwhile (user µs, system µs)."""
    cpu = os.times()
    rate, n = await _bare(port, sessions, seconds)
    end = os.times()
    per = 1e6 / n if n else 0.0
    return rate, (end.user - cpu.user) * per, (end.system - cpu.system) * per


async def _bare(port: int, sessions: int, seconds: float) -> tuple[float, int]:
    loop = asyncio.get_running_loop()
    body = b"Subject: bare\r\n\r\n" + b"x" * (MSG_LEN - 20) + b"\r\n.\r\n"
    t = time.monotonic()
    futs: list[asyncio.Future[int]] = []
    for _ in range(sessions):
        fut: asyncio.Future[int] = loop.create_future()
        futs.append(fut)
        await loop.create_connection(partial(_Bare, body, t + seconds, fut), "127.0.0.1", port)
    counts = await asyncio.wait_for(asyncio.gather(*futs), seconds + 30)
    return sum(counts) / (time.monotonic() - t), sum(counts)


class Sink:
    """``smtp-sink`` on a free port, for the whole selftest."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Sink:
        exe = find_anchor("smtp-sink")
        self.proc = await asyncio.create_subprocess_exec(
            exe,
            "-u",
            "nobody",
            f"127.0.0.1:{self.port}",
            "1000",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return self
            except OSError:
                await asyncio.sleep(0.05)
        raise SelftestError("smtp-sink did not start")

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.kill()
            await self.proc.wait()


class Counter:
    """A post office that counts arrivals and says when *n* have come (on aiosmtpd with
    ``server="aiosmtpd"``)."""

    def __init__(self, server: Literal["fast", "aiosmtpd"] = "fast") -> None:
        self.n = 0
        self.want = -1
        self.event = asyncio.Event()
        self.po = PostOffice("remote.test", self._sink, server=server)

    def _sink(self, ident: Any, mail_ns: int, recv_ns: int) -> None:
        self.n += 1
        if self.n >= self.want:
            self.event.set()

    async def fed_by_source(self, port: int, n: int, sessions: int = 10) -> float:
        """smtp-source sends *n* messages to *port* on *sessions* sessions, and they end up
        here: messages per second until the last has arrived."""
        return await self.expect(n, lambda: smtp_source_rate(port, sessions, n), 300)

    async def expect(self, n: int, run: Callable[[], Awaitable[Any]], timeout: float) -> float:
        """Run *run* and return messages per second until *n* more have arrived."""
        self.want, self.event = self.n + n, asyncio.Event()
        t = time.monotonic()
        await run()
        await asyncio.wait_for(self.event.wait(), timeout)
        return n / (time.monotonic() - t)
