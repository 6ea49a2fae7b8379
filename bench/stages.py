"""Per-stage SMTP timings (``stage.<name>`` metrics). Pure.

Connection stages (connect, banner, ehlo, starttls, auth) are timed once per connection;
message stages (mail, rcpt, data, dot) once per message, each from the moment its command went
out (or, when pipelined, from the previous reply of the same message) to its reply. Pipelined,
MAIL's time thus includes waiting behind the previous message's end of data, as the user's
client would.
"""

from __future__ import annotations

from bench.metrics import Metric, MetricSet

STAGES = ("connect", "banner", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "dot")
CONNECTION_STAGES = STAGES[:5]


class StageTimes:
    """The nine ``stage.*`` metrics of a metric set, for the sessions to record into."""

    __slots__ = ("by_name", "connect", "data", "dot", "mail", "rcpt")

    def __init__(self, metrics: MetricSet) -> None:
        self.by_name: dict[str, Metric] = {s: metrics["stage." + s] for s in STAGES}
        by = self.by_name
        self.connect = by["connect"]
        self.mail, self.rcpt, self.data, self.dot = by["mail"], by["rcpt"], by["data"], by["dot"]

    def record(self, stage: str, ns: int) -> None:
        self.by_name[stage].record(ns)


def stage_metric_names(metrics: MetricSet) -> list[str]:
    """Names of the stage metrics that recorded anything (for results and merging)."""
    return [n for n, m in metrics.items() if n.startswith("stage.") and m.count]
