"""Running the fake MTA in a process of its own (a child of mailsla, or ``mailsla fakemta``).

The system under test gets its own interpreter and event loop, so the generator and post office
do not share a loop with it. A child speaks over a :class:`multiprocessing.connection.Connection`:
it sends ``("ready", {"port": p, "inbound_port": q, "cert_file": path})`` (a
:class:`fakemta.server.ReadyInfo`; q and path may be None) or ``("error", text)``, and on
``"stop"`` replies ``("stats", {...})``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection

import uvloop

from bench.timing.gcfreeze import freeze_startup
from fakemta.server import FakeMta, FakeMtaConfig, ReadyInfo, StartError


async def _child_main(config: FakeMtaConfig, conn: Connection) -> None:
    try:
        mta = FakeMta(config)
        await mta.start()
    except (StartError, ValueError) as exc:
        conn.send(("error", f"fakemta {exc}"))
        return
    freeze_startup()
    conn.send(("ready", mta.info()))
    # The parent owns SIGINT; the child stops when told (or when the pipe closes). The pipe is
    # read by a thread: loop.add_reader would make its one descriptor non-blocking for sends too.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def wait_for_parent() -> None:
        with contextlib.suppress(EOFError, OSError):
            conn.recv()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_for_parent, name="fakemta-control", daemon=True).start()
    await stop.wait()
    stats = await mta.stop()
    with contextlib.suppress(OSError):
        conn.send(("stats", stats))


def run_child(config: FakeMtaConfig, conn: Connection) -> None:
    """Entry point of a child process started by mailsla's runner."""
    uvloop.run(_child_main(config, conn))


async def serve(config: FakeMtaConfig, on_ready: Callable[[ReadyInfo], None]) -> dict[str, object]:
    """Run in the foreground until SIGINT or SIGTERM; returns the queue's counts."""
    mta = FakeMta(config)
    await mta.start()
    freeze_startup()
    on_ready(mta.info())
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    return await mta.stop()
