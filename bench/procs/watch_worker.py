"""The receive lane's Maildir watcher in a worker of its own (a Ray actor on the node that
holds the Maildirs: ``mailsla run --ray ADDRESS --ray-watcher NODE``), reporting what became
visible in batches as a post office worker reports arrivals: ids with the times they were
seen (twice: an :class:`~bench.procs.messages.Arrivals` has a first and a last time), their
fate marks, and how many files were not the run's (no identity, another run's, or a forged
tag). It runs the very :class:`bench.observe.maildir_watch.MaildirWatcher` a local run uses.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.core.message import Identity
from bench.observe.maildir_watch import Dispose, MaildirWatcher, WatchError, make_maildir
from bench.procs.child import ArrivalBuffer, control, ship, ship_until
from bench.procs.messages import Done, Failed, Ready


@dataclass(frozen=True, slots=True)
class WatchJob:
    """What to watch: the users' Maildirs (and Junk folders), how to dispose of what is
    seen, whether to read fate marks; the run whose mail counts; and whether to create the
    Maildirs first, below *root* and owned as it is (a system's folder; None: they exist)."""

    maildirs: tuple[str, ...]
    junk: tuple[str, ...]
    dispose: Dispose
    read_marks: bool
    run_id: str
    key: bytes
    root: str | None = None


def _make(job: WatchJob) -> None:
    """Create the Maildirs an MTA makes only at first delivery, private, owned as the root."""
    if job.root is None:
        return
    root = Path(job.root)
    if not root.is_dir():
        raise WatchError(f"mailbox.maildir: {root} is not a folder on this node")
    st = root.stat()
    for d in (*job.maildirs, *job.junk):
        make_maildir(Path(d), owner=(st.st_uid, st.st_gid), mode=0o700, root=root)


async def _watcher(job: WatchJob, conn: Any) -> None:
    buf = ArrivalBuffer(job.run_id, job.key, job.read_marks)

    def sink(ident: Identity | None, now: int) -> None:
        buf.add(ident, now, now)  # seen: the first time and the last are the same

    watcher = MaildirWatcher(
        [Path(d) for d in job.maildirs],
        sink,
        dispose=job.dispose,
        read_marks=job.read_marks,
        junk=[Path(d) for d in job.junk],
    )
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, _make, job)
        await watcher.start()
    except (WatchError, OSError) as exc:
        why = str(exc) if isinstance(exc, WatchError) else (exc.strerror or str(exc))
        where = getattr(exc, "filename", None)
        conn.send(Failed(f"{why} ({where})" if where else why))
        return
    conn.send(Ready(mode=watcher.mode, resolution_s=watcher.resolution_s))
    stop = asyncio.Event()
    control(conn, lambda msg: stop.set())
    await ship_until(stop, buf, conn)
    await watcher.stop()  # the last look: what is already in new/
    ship(buf, conn)
    conn.send(Done(watch=dataclasses.asdict(watcher.stats)))
