"""The books of a generator worker that died before it reported its totals. Pure.

A worker's last batch carries its counts so far (:class:`bench.procs.messages.Batch`), and
the ids it saw accepted went to the runner with it. What the worker never reported is booked
so the accounting identity still holds: sends under way when it died are failed ("worker
died"); planned sends of its share it never made, or never even planned, are not sent. Its
accepted messages stay awaited at the post office (delivered if they arrive, else
undelivered). Its latency samples survive as of its last batch that carried its histograms
(one a second): the samples of its last second or less are lost with it.
"""

from __future__ import annotations

from bench.core.correlate import Counts, WorkerTotals
from bench.core.metrics import EncodedMetric

DIED = "worker died"


def lost_share(
    last: dict[str, int] | None,
    share: int | None,
    stage: str = "data",
    metrics: tuple[EncodedMetric, ...] = (),
) -> WorkerTotals:
    """Totals for a worker whose last reported counts were *last* (None: it reported none)
    and whose share of the schedule was *share* messages (None: a closed model, no fixed
    share), with its last reported histograms (*metrics*). Booked failures go under
    (*stage*, "worker died")."""
    c = Counts(**(last or {}))
    under_way = max(c.sent - c.accepted - c.rejected - c.failed, 0)
    unsent = max(c.planned - c.sent - c.not_sent, 0)  # planned, never started
    rest = max((share or 0) - c.planned, 0)  # never planned
    c.failed += under_way
    c.not_sent += unsent + rest
    c.planned += rest
    failed = {(stage, DIED): under_way} if under_way else {}
    return WorkerTotals(c.as_dict(), {}, failed, None, metrics)
