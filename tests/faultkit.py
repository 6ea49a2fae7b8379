"""Helpers for the fault tests: a line-level SMTP client and fake MTAs started on demand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fakemta.server import FakeMta, FakeMtaConfig

StartMta = Callable[..., Awaitable[FakeMta]]


class Raw:
    """A line-level SMTP client: ``cmd`` returns the last line of the reply, None on EOF."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w = reader, writer

    @classmethod
    async def open(cls, port: int) -> Raw:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    @classmethod
    async def open_when_back(cls, port: int) -> Raw:
        """Connect, retrying while the connection is refused (for at most 5 s)."""
        for _ in range(500):
            try:
                return await cls.open(port)
            except ConnectionRefusedError:
                await asyncio.sleep(0.01)
        raise AssertionError(f"port {port} still refuses connections after 5 s")

    async def reply(self, timeout: float = 5.0) -> str | None:
        async with asyncio.timeout(timeout):
            for _ in range(100):
                try:
                    line = await self.r.readline()
                except ConnectionResetError:
                    return None
                if not line:
                    return None
                text = line.decode().rstrip("\r\n")
                if text[3:4] != "-":
                    return text
        raise AssertionError("a reply of more than 100 lines")

    def send(self, line: str) -> None:
        self.w.write(line.encode() + b"\r\n")

    async def cmd(self, line: str, timeout: float = 5.0) -> str | None:
        self.send(line)
        return await self.reply(timeout)

    def close(self) -> None:
        self.w.close()


@contextlib.asynccontextmanager
async def mta_starter(relay_port: int) -> AsyncIterator[StartMta]:
    """``start(**config)`` starts a fake MTA relaying to *relay_port*; all stop at the end."""
    started: list[FakeMta] = []

    async def start(**options: Any) -> FakeMta:
        options.setdefault("relay_port", relay_port)
        mta = FakeMta(FakeMtaConfig(relay_host="127.0.0.1", **options))
        await mta.start()
        started.append(mta)
        return mta

    try:
        yield start
    finally:
        for mta in started:
            await mta.stop()
