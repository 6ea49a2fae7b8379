"""A node's clock against the driver's, from round trips. Pure.

The driver reads its clock (``t0``), asks the node for its clock (``t1``), and reads its own
again when the answer is back (``t2``). If the node answered half-way, its clock is ahead of
the driver's by ``t1 - (t0 + t2) / 2``; it answered somewhere within the round trip, so that
figure is off by at most half the round trip. Of several round trips the one with the
shortest round trip is kept (the others only add queueing). The offset is measured at the
start and at the end of a run: their difference is the clocks' drift over the run, which adds
to the uncertainty. Times on the node become the driver's by subtracting the offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

MS = 1_000_000

# Above this a node's intervals that cross to another host are suspect: the run says so.
WARN_NS = 5 * MS
# Above this the node's clock is no use for intervals of mail delivery: the run refuses it.
REFUSE_NS = 1_000 * MS


@dataclass(frozen=True, slots=True)
class Probe:
    """One round trip: the driver's clock before (``sent``) and after (``back``), and the
    node's clock in between (``node``), all in nanoseconds."""

    sent: int
    node: int
    back: int

    @property
    def rtt(self) -> int:
        return self.back - self.sent


@dataclass(frozen=True, slots=True)
class Offset:
    """How far the node's clock is ahead of the driver's (``offset_ns``, negative when
    behind), to within ``uncertainty_ns``; from the best of ``probes`` round trips."""

    offset_ns: int
    uncertainty_ns: int
    rtt_ns: int
    probes: int

    def to_driver(self, node_ns: int) -> int:
        """A time on the node's clock as the driver's clock read it."""
        return node_ns - self.offset_ns

    def to_node(self, driver_ns: int) -> int:
        """A time on the driver's clock as the node's clock reads it."""
        return driver_ns + self.offset_ns


def estimate(probes: Iterable[Probe]) -> Offset:
    """The offset from the round trip with the shortest round trip. Raises ValueError when
    there is none, or one went back in time (the driver's clock must be monotonic)."""
    ps = list(probes)
    if not ps:
        raise ValueError("no round trips to estimate a clock offset from")
    if any(p.rtt < 0 for p in ps):
        raise ValueError("a round trip ended before it began: not a monotonic clock")
    best = min(ps, key=lambda p: p.rtt)
    # t1 - (t0 + t2) / 2, rounded half away from the driver: exact in integers
    offset = best.node - (best.sent + best.back) // 2
    return Offset(offset, (best.rtt + 1) // 2, best.rtt, len(ps))


@dataclass(frozen=True, slots=True)
class Agreement:
    """A node's clock over a run: its offset at the start and (once measured) at the end,
    and what follows: the drift, the uncertainty of a corrected time, the verdict."""

    start: Offset
    end: Offset | None = None

    @property
    def drift_ns(self) -> int:
        return 0 if self.end is None else self.end.offset_ns - self.start.offset_ns

    @property
    def uncertainty_ns(self) -> int:
        """How wrong a node time corrected with the start offset may be during the run."""
        worst_end = 0 if self.end is None else self.end.uncertainty_ns
        return max(self.start.uncertainty_ns, worst_end) + abs(self.drift_ns)

    def verdict(self, warn_ns: int = WARN_NS, refuse_ns: int = REFUSE_NS) -> str:
        """ "ok", "warn" (above *warn_ns*) or "refuse" (above *refuse_ns*)."""
        u = self.uncertainty_ns
        return "refuse" if u > refuse_ns else "warn" if u > warn_ns else "ok"

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "offset_ms": self.start.offset_ns / MS,
            "uncertainty_ms": self.uncertainty_ns / MS,
            "rtt_ms": self.start.rtt_ns / MS,
            "probes": self.start.probes,
        }
        if self.end is not None:
            doc["end_offset_ms"] = self.end.offset_ns / MS
            doc["drift_ms"] = self.drift_ns / MS
        doc["verdict"] = self.verdict()
        return doc

    def warning(self, node: str) -> str | None:
        """A line for result.json's warnings when the clocks agree too loosely."""
        if self.verdict() == "ok":
            return None
        return (
            f"node {node}: its clock agrees with the driver's only to within "
            f"{self.uncertainty_ns / MS:.3f} ms (warn above {WARN_NS / MS:g} ms): delays "
            "measured across hosts are off by up to that much"
        )
