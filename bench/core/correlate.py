"""Join what the generator saw with what the post office saw, by message id. Pure.

The generator reports each message's fate (sent, then accepted, rejected or failed); the post
office reports each arrival (relay's MAIL FROM time, fully-received time). Either may come
first. Only messages in flight are held (accepted but not yet arrived, or arrived before the
generator read its 250); delivered ids are remembered in a bitset, so duplicates are caught
without a per-message list. At :meth:`Correlator.finish` whatever is still awaited is
``undelivered``, and the accounting identity
``planned = not_sent + rejected + failed + delivered + undelivered`` holds by construction.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.core.availability import Availability
from bench.core.fates import FateBooks
from bench.core.metrics import EncodedMetric, Metric, MetricSet

GEN_METRICS = ("submit_latency", "service_time", "schedule_lag")
SPINE_METRICS = (*GEN_METRICS, "send_delay", "delivery_delay")
RECEIVE_METRICS = (*GEN_METRICS, "receive_delay")


@dataclass(slots=True)
class Counts:
    planned: int = 0
    not_sent: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    delivered: int = 0
    undelivered: int = 0  # accepted, and still not delivered when the drain was over
    in_flight_at_stop: int = 0  # accepted, and still on its way when the run was stopped
    foreign: int = 0
    duplicate: int = 0
    late: int = 0
    failed_then_delivered: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in self.__slots__}

    @property
    def identity_holds(self) -> bool:
        c = self
        settled = c.delivered + c.undelivered + c.in_flight_at_stop
        return (
            c.planned == c.not_sent + c.rejected + c.failed + settled
            and c.sent == c.rejected + c.failed + c.accepted
            and c.accepted == settled
        )


@dataclass(slots=True)
class Outcomes:
    """Why messages did not make it: rejections by (stage, code), failures by (stage, error)."""

    rejected: Counter[tuple[str, int]] = field(default_factory=Counter)
    failed: Counter[tuple[str, str]] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        by_class: Counter[str] = Counter()
        for (_, code), n in self.rejected.items():
            by_class[f"{code // 100}xx"] += n
        by_class["connection"] = sum(self.failed.values())
        return {
            "rejected": [
                {"stage": s, "code": c, "class": f"{c // 100}xx", "count": n}
                for (s, c), n in self.rejected.most_common()
            ],
            "failed": [
                {"stage": s, "error": e, "class": "connection", "count": n}
                for (s, e), n in self.failed.most_common()
            ],
            "by_class": {k: n for k, n in sorted(by_class.items()) if n},
        }


@dataclass(frozen=True, slots=True)
class WorkerTotals:
    """A generator worker's books at its end, for the runner's :class:`Correlator` to absorb:
    counts, refusals and failures by (stage, code or error), availability windows, and its
    metrics encoded (they merge exactly)."""

    counts: dict[str, int]
    rejected: dict[tuple[str, int], int]
    failed: dict[tuple[str, str], int]
    availability: Availability | None
    metrics: tuple[EncodedMetric, ...]
    fates: dict[str, Any] | None = None  # labelled traffic: FateBooks.export()


class Bitset:
    """A growable set of small non-negative ints, one bit each."""

    __slots__ = ("bits",)

    def __init__(self) -> None:
        self.bits = bytearray(1024)

    def add(self, i: int) -> bool:
        """Add *i*; False if it was already there."""
        byte, bit = divmod(i, 8)
        if byte >= len(self.bits):
            self.bits.extend(bytes(max(byte + 1, 2 * len(self.bits)) - len(self.bits)))
        mask = 1 << bit
        if self.bits[byte] & mask:
            return False
        self.bits[byte] |= mask
        return True

    def __contains__(self, i: int) -> bool:
        byte, bit = divmod(i, 8)
        return byte < len(self.bits) and bool(self.bits[byte] & (1 << bit))


class Correlator:
    """Online join of generator records and post-office arrivals into metrics and counts."""

    def __init__(self, run_id: str, late_after_ns: int, direction: str = "send") -> None:
        self.run_id = run_id
        self.late_after_ns = late_after_ns
        self.direction = direction
        self.counts = Counts()
        self.outcomes = Outcomes()
        self.metrics = MetricSet()
        # The lane's delay metric is also kept per interval, for the live view's window.
        self.delay_metric = "send_delay" if direction == "send" else "receive_delay"
        for name in SPINE_METRICS if direction == "send" else RECEIVE_METRICS:
            self.metrics[name] = Metric(name, interval=name == self.delay_metric)
        self._delay = self.metrics[self.delay_metric]
        self._lag = self.metrics["schedule_lag"]  # the generator's, recorded per message
        self._submit = self.metrics["submit_latency"]
        self._service = self.metrics["service_time"]
        self._received = self.metrics["delivery_delay"] if direction == "send" else None
        self._awaiting: dict[int, int] = {}  # id -> accepted_ns
        self._early: dict[int, tuple[int, int]] = {}  # id -> (mail_ns, received_ns)
        self._delivered = Bitset()
        self._unaccepted = Bitset()  # rejected or failed: an arrival later is not "early"
        self._issued = 0  # ids below this have been handed to the generator
        self.remote = False  # the generator runs elsewhere: ids arrive in batches
        self.availability: Availability | None = None  # workers' records merge into it
        self.finished = False
        self.fates: FateBooks | None = None  # labelled traffic: the fate of each class

    def expect_remote(self) -> None:
        """The generator runs in worker processes: ids arrive in batches, so an arrival may
        come before its send is reported (it waits as early, it is not foreign)."""
        self.remote = True

    def attach_availability(self, availability: Availability) -> None:
        """The run's availability windows, into which workers' records merge (:meth:`absorb`)."""
        self.availability = availability

    # -- generator side ------------------------------------------------------------------
    def on_planned(self, n: int = 1) -> None:
        self.counts.planned += n

    def on_not_sent(self, n: int = 1) -> None:
        self.counts.not_sent += n

    def on_sent(self, seq: int, planned_ns: int, start_ns: int) -> None:
        """A send of message *seq* started (its first byte is about to go out)."""
        self.counts.sent += 1
        if seq >= self._issued:
            self._issued = seq + 1
        lag = start_ns - planned_ns
        if lag > self.late_after_ns:
            self.counts.late += 1
        self._lag.record(lag)

    def on_accepted(self, seq: int, planned_ns: int, start_ns: int, accepted_ns: int) -> None:
        """The final 250 after DATA was read for message *seq*."""
        self.counts.accepted += 1
        self._submit.record(accepted_ns - planned_ns)
        self._service.record(accepted_ns - start_ns)
        early = self._early.pop(seq, None)
        if early is None:
            self._awaiting[seq] = accepted_ns
        else:
            self._join(accepted_ns, *early, seq)

    def on_rejected(self, seq: int, stage: str, code: int) -> None:
        self.counts.rejected += 1
        self.outcomes.rejected[(stage, code)] += 1
        if self.fates is not None:
            self.fates.on_rejected(seq, stage, code)
        self._settle_unaccepted(seq)

    def on_failed(self, seq: int, stage: str, error: str) -> None:
        self.counts.failed += 1
        self.outcomes.failed[(stage, error)] += 1
        if self.fates is not None:
            self.fates.on_failed(seq)
        self._settle_unaccepted(seq)

    def _settle_unaccepted(self, seq: int) -> None:
        # The system may have taken a message whose 250 we never read (a timeout at the dot);
        # its copy may reach the post office before or after we give up on it.
        self._unaccepted.add(seq)
        if self._early.pop(seq, None) is not None:
            self.counts.failed_then_delivered += 1

    # -- a generator in worker processes ------------------------------------------------
    def on_remote_accepted(self, seq: int, accepted_ns: int) -> None:
        """A worker saw the 250 for *seq* (its counts and metrics come with :meth:`absorb`)."""
        early = self._early.pop(seq, None)
        if early is None:
            self._awaiting[seq] = accepted_ns
        else:
            self._join(accepted_ns, *early, seq)

    def on_remote_unaccepted(self, seq: int) -> None:
        self._settle_unaccepted(seq)

    def absorb(self, totals: WorkerTotals) -> None:
        """Add a worker's totals (see :meth:`bench.core.books.GenRecorder.final`)."""
        for key, n in totals.counts.items():
            setattr(self.counts, key, getattr(self.counts, key) + n)
        self.outcomes.rejected.update(totals.rejected)
        self.outcomes.failed.update(totals.failed)
        for enc in totals.metrics:
            self.metrics[enc.name].merge(enc.decode())
        if totals.availability is not None and self.availability is not None:
            self.availability.merge(totals.availability)
        if totals.fates is not None and self.fates is not None:
            self.fates.absorb(totals.fates)

    # -- post office side ----------------------------------------------------------------
    def on_arrival(
        self, run: str, seq: int, mail_ns: int, received_ns: int, marks: int = 0
    ) -> None:
        """Message *seq* of *run* arrived: relay's MAIL FROM at *mail_ns*, complete at
        *received_ns* (for the receive lane: both are when it became visible); *marks*: what
        :mod:`bench.observe.fate_reader` saw in it (labelled traffic)."""
        if run != self.run_id or seq < 0 or (seq >= self._issued and not self.remote):
            self.counts.foreign += 1
            return
        if not self._delivered.add(seq):
            self.counts.duplicate += 1
            return
        if seq in self._unaccepted:
            self.counts.failed_then_delivered += 1
            return
        if self.fates is not None:
            self.fates.on_delivered(seq, marks)
        accepted_ns = self._awaiting.pop(seq, None)
        if accepted_ns is None:
            self._early[seq] = (mail_ns, received_ns)
        else:
            self._join(accepted_ns, mail_ns, received_ns, seq)

    def on_foreign(self, n: int = 1) -> None:
        """*n* messages that are not this run's (or carry no identity) arrived."""
        self.counts.foreign += n

    def _join(self, accepted_ns: int, mail_ns: int, received_ns: int, seq: int) -> None:
        self.counts.delivered += 1
        self._delay.record(mail_ns - accepted_ns)
        if self.fates is not None:
            self.fates.on_delay(seq, self.delay_metric, mail_ns - accepted_ns)
        if self._received is not None:
            self._received.record(received_ns - accepted_ns)

    # -- end -----------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Accepted messages not yet seen at the post office."""
        return len(self._awaiting)

    def finish(self, *, stopped: bool = False) -> Counts:
        """Close the books: awaited mail is undelivered (the system lost it, or kept it past
        the drain) or, when the run was *stopped* before its drain was over, in flight at stop
        (neither delivered nor lost); stray early arrivals are foreign."""
        if not self.finished:
            self.finished = True
            if self.fates is not None:
                for seq in self._awaiting:
                    self.fates.on_undelivered(seq, stopped=stopped)
            if stopped:
                self.counts.in_flight_at_stop += len(self._awaiting)
            else:
                self.counts.undelivered += len(self._awaiting)
            self._awaiting.clear()
            # Arrivals whose send never reported back (cannot happen unless interrupted).
            self.counts.foreign += len(self._early)
            self._early.clear()
        return self.counts
