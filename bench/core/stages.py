"""Per-stage SMTP timings (``stage.<name>`` metrics). Pure.

Connection stages (connect, banner, ehlo, starttls, auth) are timed once per connection;
message stages (mail, rcpt, data, dot) once per message, each from the moment its command went
out (or, when pipelined, from the previous reply of the same message) to its reply. Pipelined,
MAIL's time thus includes waiting behind the previous message's end of data, as the user's
client would.
"""

from __future__ import annotations

import time

from bench.config.names import STAGES
from bench.core.metrics import Metric, MetricSet


class StageTimes:
    """The nine ``stage.*`` metrics of a metric set, for the sessions to record into."""

    __slots__ = ("by_name", "message")

    def __init__(self, metrics: MetricSet) -> None:
        self.by_name: dict[str, Metric] = {s: metrics["stage." + s] for s in STAGES}
        # mail, rcpt, data, dot: indexed by the pipelined client's reply kinds (per reply)
        self.message = tuple(self.by_name[s] for s in ("mail", "rcpt", "data", "dot"))

    def record(self, stage: str, ns: int) -> None:
        self.by_name[stage].record(ns)


def timed(stages: StageTimes | None, stage: str, since_ns: int) -> int:
    """Record *stage* as lasting from *since_ns* to now (when timing at all); returns now, the
    start of the next stage."""
    now = time.monotonic_ns()
    if stages is not None:
        stages.by_name[stage].record(now - since_ns)
    return now
