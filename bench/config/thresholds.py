"""The threshold grammar: what a user writes in ``sla.thresholds``, parsed. Pure.

A threshold reads ``metric.stat OP value``: ``send_delay.p99 < 500ms``, ``submit_latency.mean
<= 1s``, ``send_delay.count >= 1000``. With a window, ``metric.stat[1m] OP value``, it must hold
in every window of that length (tumbling, aligned to the run's start), judged from interval
histograms the caller hands in. Parse errors quote the user's text.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from bench.config.names import KNOWN_METRICS
from bench.config.units import format_duration, parse_duration
from bench.errors import UsageError

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

_THRESHOLD = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.]*?)\.(?P<stat>count|mean|min|max|p[0-9]+(?:\.[0-9]+)?)"
    r"(?:\[(?P<window>[^\]]*)\])?\s*(?P<op><=|>=|<|>)\s*(?P<value>\S.*?)\s*$"
)
_FORM = (
    "write metric.stat OP value, e.g. send_delay.p99 < 500ms, "
    "or metric.stat[window] OP value, e.g. send_delay.p99[1m] < 500ms"
)


class ThresholdError(UsageError, ValueError):
    """A threshold that cannot be parsed; the message quotes the input."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """One parsed threshold. ``limit`` is in seconds, or a plain number for ``count``;
    ``window_s``: it must hold in every window of this length (None: over the whole run);
    ``abort_on_fail``: the run stops when it fails, checked from ``grace_s`` after the start."""

    metric: str
    stat: str
    op: str
    limit: float
    text: str
    window_s: float | None = None
    abort_on_fail: bool = False
    grace_s: float = 0.0

    @property
    def live(self) -> bool:
        """Checked while the run goes (a window, or abort_on_fail), not only at its end."""
        return self.window_s is not None or self.abort_on_fail

    @property
    def name(self) -> str:
        if self.window_s is None:
            return f"{self.metric}.{self.stat}"
        return f"{self.metric}.{self.stat}[{format_duration(self.window_s)}]"

    def holds(self, observed: float) -> bool:
        return OPS[self.op](observed, self.limit)


def parse_threshold(text: str) -> Threshold:
    """Parse ``"send_delay.p99 < 500ms"`` into a :class:`Threshold`."""
    if not isinstance(text, str):
        raise ThresholdError(f"{text!r} is not a threshold ({_FORM})")
    m = _THRESHOLD.match(text)
    if not m:
        raise ThresholdError(f"{text!r} is not a threshold ({_FORM})")
    metric, stat, op, value = m["metric"], m["stat"], m["op"], m["value"]
    window_s = None
    if m["window"] is not None:
        try:
            window_s = parse_duration(m["window"].strip())
        except ValueError as exc:
            raise ThresholdError(f"{text!r}: window: {exc}") from None
        if window_s <= 0:
            raise ThresholdError(f"{text!r}: window {m['window']!r} must be longer than 0")
    if metric not in KNOWN_METRICS:
        raise ThresholdError(
            f"{text!r}: unknown metric {metric!r} (known: {', '.join(KNOWN_METRICS)})"
        )
    if stat.startswith("p"):
        q = float(stat[1:])
        if not 0 < q <= 100:
            raise ThresholdError(f"{text!r}: percentile {stat!r} must be between p0 and p100")
    if stat == "count":
        try:
            limit = float(int(value))
        except ValueError:
            raise ThresholdError(f"{text!r}: a count needs a whole number, not {value!r}") from None
    else:
        try:
            limit = parse_duration(value)
        except ValueError as exc:
            raise ThresholdError(f"{text!r}: {exc}") from None
    return Threshold(metric, stat, op, limit, text.strip(), window_s)
