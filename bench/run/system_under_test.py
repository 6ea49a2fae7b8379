"""The system under test as seen by the runner: an embedded fake MTA in a child process, or
the address of an existing SMTP server."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from bench.config.scenario import Scenario
from bench.errors import StartupError
from bench.run.wiring import MailboxRoot, fakemta_config
from fakemta.process import run_child
from fakemta.server import FakeMtaConfig


class ChildFakeMta:
    """A fake MTA in its own process (spawned, so it has its own interpreter and loop)."""

    def __init__(self, config: FakeMtaConfig) -> None:
        self.config = config
        self._proc: Any = None
        self._conn: Connection | None = None
        self.port = 0
        self.inbound_port: int | None = None  # with local delivery: the MX port
        self.cert_file: str | None = None  # with TLS: the certificate (a client's CA file)

    async def _recv(self, timeout: float) -> Any:
        conn = self._conn
        assert conn is not None
        loop = asyncio.get_running_loop()
        ready = await loop.run_in_executor(None, conn.poll, timeout)
        if not ready:
            return None
        try:
            return conn.recv()
        except (EOFError, OSError):
            return None

    async def start(self, timeout: float = 30.0) -> int:
        """Start the child; returns the submission port (see also inbound_port, cert_file)."""
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        self._conn = parent
        self._proc = ctx.Process(
            target=run_child, args=(self.config, child), name="fakemta", daemon=True
        )
        self._proc.start()
        child.close()
        msg = await self._recv(timeout)
        if not msg or msg[0] != "ready":
            why = msg[1] if msg and msg[0] == "error" else "it did not report ready"
            await self.kill()
            raise StartupError(f"the embedded fake MTA did not start: {why}")
        info = msg[1]
        self.port = int(info["port"])
        self.inbound_port = info.get("inbound_port")
        self.cert_file = info.get("cert_file")
        return self.port

    def exit_reason(self) -> str | None:
        """Why the child is gone, when it died during the run (None while it runs)."""
        proc = self._proc
        if proc is None or proc.is_alive():
            return None
        code = proc.exitcode or 0
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
        return f"the embedded fake MTA died during the run ({how}); the mail it held is lost"

    async def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """Ask the child to stop; returns its queue counts (empty if it had died)."""
        stats: dict[str, Any] = {}
        if self._conn is not None and self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send("stop")
                msg = await self._recv(timeout)
                if msg and msg[0] == "stats":
                    stats = msg[1]
            except (BrokenPipeError, OSError):
                pass
        await self.kill()
        return stats

    async def kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, proc.join, 3.0)
        if proc.is_alive():
            proc.kill()
            await loop.run_in_executor(None, proc.join, 3.0)
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._proc = None


@dataclass(frozen=True, slots=True)
class System:
    """The system under test once it is up: the fake MTA's child (None for kind "smtp"), where
    users submit, where other post offices deliver, and the CA file to trust."""

    mta: ChildFakeMta | None
    submit: tuple[str, int]
    inbound: tuple[str, int]
    ca_file: str | None


async def start_system(
    sc: Scenario,
    po_port: int,
    mailboxes: MailboxRoot | None,
    credentials: tuple[str, str] | None,
    po_host: str | None = None,
) -> System:
    """Start the embedded fake MTA (relaying to the post office at *po_port*, on *po_host*
    when it is not ``postoffice.listen``'s), or take the scenario's addresses of an existing
    system."""
    ca_file = sc.system.ca_file
    if sc.system.kind != "fakemta":
        return System(None, sc.system.submit or ("", 0), sc.system.inbound or ("", 0), ca_file)
    mta = ChildFakeMta(fakemta_config(sc, po_port, mailboxes, credentials, po_host))
    port = await mta.start()
    inbound = (sc.fakemta.inbound[0], mta.inbound_port or 0)
    return System(mta, (sc.fakemta.listen[0], port), inbound, ca_file or mta.cert_file)
