"""What the runner and its worker processes say to each other over their pipes: one frozen
dataclass per kind of message, pickled by :mod:`multiprocessing`. Batches carry ids and times
as packed int64 arrays (``array("q").tobytes()``), never one message per mail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.core.correlate import WorkerTotals
from bench.core.metrics import EncodedMetric

# -- the runner to a worker ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Go:
    """Start sending: the run's start on the host's monotonic clock, and on the wall clock."""

    start_ns: int
    start_wall_ns: int


@dataclass(frozen=True, slots=True)
class Stop:
    """Take no more planned sends (post office: stop listening); sends under way finish."""


@dataclass(frozen=True, slots=True)
class Cancel:
    """Abandon sends in progress (each is booked as failed, "interrupted")."""


# -- a generator worker to the runner --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ready:
    """The worker is up (a post office worker: listening on *port*; a watcher: watching, in
    *mode*, "inotify" or "poll", seeing each message at most *resolution_s* late)."""

    port: int = 0
    mode: str = ""
    resolution_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Batch:
    """What a generator worker saw since its last batch: ids accepted (with the times of their
    250s) and ids rejected or failed; its counts so far and its messages in flight; and, about
    once a second, its histograms so far (what survives it if it dies before its totals)."""

    accepted_ids: bytes
    accepted_ns: bytes
    unaccepted_ids: bytes
    counts: dict[str, int]
    in_flight: int
    metrics: tuple[EncodedMetric, ...] = ()


@dataclass(frozen=True, slots=True)
class Done:
    """The worker has finished: its totals (a generator's; None for a post office) and why it
    gave up, if it did."""

    totals: WorkerTotals | None = None
    abort_reason: str | None = None
    deferred: int = 0  # a post office worker's on-purpose refusals (postoffice.defer)
    refused: int = 0  # (postoffice.refuse)
    watch: dict[str, Any] | None = None  # a watcher's counts (observe.maildir_watch.WatchStats)


# -- a post office worker to the runner ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arrivals:
    """Mail a post office worker received since its last batch: ids, the times of the relay's
    MAIL FROM and of the end of data; and how many carried no identity of this run."""

    ids: bytes
    mail_ns: bytes
    received_ns: bytes
    foreign: int
    marks: bytes = b""  # labelled traffic: each arrival's fate marks (int8), else empty


@dataclass(frozen=True, slots=True)
class Failed:
    """The worker could not start (the reason, one line)."""

    why: str


@dataclass(frozen=True, slots=True)
class Died:
    """The worker's pipe closed before it said :class:`Done` (not sent: the reader makes it)."""


ToWorker = Go | Stop | Cancel
FromWorker = Ready | Batch | Done | Arrivals | Failed | Died
