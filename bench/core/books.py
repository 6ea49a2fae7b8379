"""The generator's side of the books, for a generator running in a worker process. Pure.

A worker cannot join sends with arrivals (the post office is elsewhere), so it keeps what is
its own — counts, outcomes, submit_latency / service_time / schedule_lag — and hands the
parent, in small batches, the ids it saw accepted (with the time of the 250) and the ids that
were rejected or failed. The parent's :class:`bench.core.correlate.Correlator` does the join.
"""

from __future__ import annotations

from array import array
from typing import Protocol

from bench.core.availability import Availability
from bench.core.correlate import GEN_METRICS, Counts, Outcomes, WorkerTotals
from bench.core.fates import FateBooks
from bench.core.metrics import EncodedMetric, MetricSet


class Recorder(Protocol):
    """Where the generator reports each message (a Correlator, or a worker's GenRecorder)."""

    fates: FateBooks | None  # labelled traffic (message.mix): the books of each class's fate

    def on_planned(self, n: int = 1) -> None: ...
    def on_not_sent(self, n: int = 1) -> None: ...
    def on_sent(self, seq: int, planned_ns: int, start_ns: int) -> None: ...
    def on_accepted(self, seq: int, planned_ns: int, start_ns: int, accepted_ns: int) -> None: ...
    def on_rejected(self, seq: int, stage: str, code: int) -> None: ...
    def on_failed(self, seq: int, stage: str, error: str) -> None: ...


class GenRecorder:
    """A :class:`Recorder` for a generator in a worker process (the generator side of
    :class:`bench.core.correlate.Correlator`)."""

    def __init__(self, late_after_ns: int) -> None:
        self.late_after_ns = late_after_ns
        self.counts = Counts()
        self.outcomes = Outcomes()
        self.metrics = MetricSet()
        self._lag = self.metrics["schedule_lag"]
        self._submit = self.metrics["submit_latency"]
        self._service = self.metrics["service_time"]
        self.accepted_ids: array[int] = array("q")
        self.accepted_ns: array[int] = array("q")
        self.unaccepted_ids: array[int] = array("q")
        self.availability: Availability | None = None  # set when the run's start is known
        self.fates: FateBooks | None = None  # labelled traffic: rejections by class

    def start(self, availability: Availability) -> Availability:
        """The run has started: its availability windows (returned) begin now."""
        self.availability = availability
        return availability

    def on_planned(self, n: int = 1) -> None:
        self.counts.planned += n

    def on_not_sent(self, n: int = 1) -> None:
        self.counts.not_sent += n

    def on_sent(self, seq: int, planned_ns: int, start_ns: int) -> None:
        self.counts.sent += 1
        lag = start_ns - planned_ns
        if lag > self.late_after_ns:
            self.counts.late += 1
        self._lag.record(lag)

    def on_accepted(self, seq: int, planned_ns: int, start_ns: int, accepted_ns: int) -> None:
        self.counts.accepted += 1
        self._submit.record(accepted_ns - planned_ns)
        self._service.record(accepted_ns - start_ns)
        self.accepted_ids.append(seq)
        self.accepted_ns.append(accepted_ns)

    def on_rejected(self, seq: int, stage: str, code: int) -> None:
        self.counts.rejected += 1
        self.outcomes.rejected[(stage, code)] += 1
        if self.fates is not None:
            self.fates.on_rejected(seq, stage, code)
        self.unaccepted_ids.append(seq)

    def on_failed(self, seq: int, stage: str, error: str) -> None:
        self.counts.failed += 1
        self.outcomes.failed[(stage, error)] += 1
        if self.fates is not None:
            self.fates.on_failed(seq)
        self.unaccepted_ids.append(seq)

    def take_batch(self) -> tuple[bytes, bytes, bytes]:
        """The ids reported since the last call, as packed int64 arrays (and forget them)."""
        out = (
            self.accepted_ids.tobytes(),
            self.accepted_ns.tobytes(),
            self.unaccepted_ids.tobytes(),
        )
        self.accepted_ids, self.accepted_ns = array("q"), array("q")
        self.unaccepted_ids = array("q")
        return out

    def encoded_metrics(self) -> tuple[EncodedMetric, ...]:
        """The worker's histograms so far, encoded (they merge exactly)."""
        return tuple(
            EncodedMetric.of(m)
            for n, m in self.metrics.items()
            if n in GEN_METRICS or (n.startswith("stage.") and m.count)
        )

    def final(self) -> WorkerTotals:
        """Totals for the parent to absorb at the end."""
        return WorkerTotals(
            counts=self.counts.as_dict(),
            rejected=dict(self.outcomes.rejected),
            failed=dict(self.outcomes.failed),
            availability=self.availability,
            metrics=self.encoded_metrics(),
            fates=self.fates.export() if self.fates is not None else None,
        )


def unpack(raw: bytes) -> array[int]:
    a = array("q")
    a.frombytes(raw)
    return a
