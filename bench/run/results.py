"""result.json (schema ``mailsla.result/1``) written atomically, and the values a run hands to
its observers: the live view's :class:`Snapshot` and the final :class:`RunResult`."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from bench.errors import ExitCode, UsageError
from bench.verdict.sla import Verdict
from bench.version import git_commit

SCHEMA = "mailsla.result/1"
IDENTITY = "planned = not_sent + rejected + failed + delivered + undelivered + in_flight_at_stop"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the live view shows, once a second."""

    phase: str
    elapsed_s: float
    duration_s: float
    drain_s: float
    counts: dict[str, int]
    sending: int
    awaiting: int
    rate: float
    window: tuple[float, float, float] | None
    expected: int | None = None  # planned sends in the whole schedule (None: closed model)
    window_metric: str = "send_delay"  # what ``window`` summarises


class Observer(Protocol):
    def started(self, line: str) -> None: ...

    def update(self, snap: Snapshot) -> None: ...


@dataclass(frozen=True, slots=True)
class RunResult:
    doc: dict[str, Any]
    path: Path
    verdict: Verdict
    status: str
    reason: str | None
    exit_code: ExitCode


def versions() -> dict[str, str]:
    """Versions of mailsla, Python and the libraries that shape the numbers."""
    out = {"python": platform.python_version()}
    for dist in ("mailsla", "aiosmtpd", "aiosmtplib", "uvloop", "hdrhistogram", "aioimaplib"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    out["mailsla_commit"] = git_commit() or "unknown"
    return out


RESERVE_BYTES = 1 << 20  # kept free for result.json while a run goes (a big one is ~300 KB)


class Reserve:
    """Space held for result.json from a run's start to its end, so that the optional files
    (metrics.hlog, timeseries.csv) filling the disk cannot cost the run its result."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".mailsla-reserve"
        self.held = False

    def take(self) -> None:
        """Hold :data:`RESERVE_BYTES` in the folder (made if need be); OSError when the disk
        cannot give them."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.posix_fallocate(fd, 0, RESERVE_BYTES)
            finally:
                os.close(fd)
        except OSError:
            self.path.unlink(missing_ok=True)
            raise
        self.held = True

    def release(self) -> None:
        """Give the space back (just before result.json is written)."""
        self.path.unlink(missing_ok=True)
        self.held = False


class OptionalFiles(Protocol):
    """What writes a run's optional files after result.json (the time series)."""

    dropped: list[str]

    def write_csv(self) -> None: ...


def write_result(
    out_dir: Path, doc: dict[str, Any], reserve: Reserve, extras: OptionalFiles | None
) -> Path:
    """Results first: release *reserve* and write result.json, then the optional files; if
    one of those is given up, result.json is written again saying so (the first stands if that
    fails too)."""
    reserve.release()
    path = out_dir / "result.json"
    write_json_atomic(path, doc)
    if extras is not None:
        before = len(extras.dropped)
        extras.write_csv()
        if len(extras.dropped) > before:
            doc["run"].setdefault("warnings", []).extend(extras.dropped[before:])
            with contextlib.suppress(OSError):
                write_json_atomic(path, doc)
    return path


def check_writable(folder: Path) -> None:
    """Make *folder* (and its parents) and prove that result.json's reserve fits there, before
    a run starts: a :class:`UsageError` naming the folder otherwise."""
    reserve = Reserve(folder)
    try:
        reserve.take()
    except OSError as exc:
        raise UsageError(
            f"--out {folder}: cannot write there, or not {RESERVE_BYTES >> 20} MiB free for "
            f"result.json: {exc.strerror or exc}"
        ) from None
    reserve.release()


def point_latest(run_dir: Path) -> Path | None:
    """Make ``<results>/latest`` a symlink to *run_dir* (its sibling); the link, or None when
    the file system refuses."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / ".latest-new"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, link)
    except OSError:
        tmp.unlink(missing_ok=True)
        return None
    return link


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """Write *doc* to *path* so a reader sees the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".result-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
