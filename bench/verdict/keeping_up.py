"""Keeping up: the backlog signals of :mod:`bench.core.backlog` as checks beside the SLA's, so
a capacity step fails when the system is not keeping up with the offered load.

``backlog_growth``: the backlog grew across the measured window by more than its noise (and
more than a floor share of the mail accepted); ``delivery_behind``: the delivered rate fell
behind the accepted rate by more than a share; ``late_sends``: more than a share of the sends
started late (the generator, or the server's acceptance, could not keep the schedule).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.backlog import Backlog, growth_limit
from bench.verdict.sla import Check

SOURCE = "keeping_up"
NAMES = ("backlog_growth", "delivery_behind", "late_sends")


@dataclass(frozen=True, slots=True)
class Limits:
    """*z*: growth beyond this many times the noise grows; *floor_share*: ... and beyond this
    share of the accepted mail; *behind_share*: delivered below accepted by more than this
    share; *late_share*: at most this share of sends late."""

    z: float = 3.0
    floor_share: float = 0.01
    behind_share: float = 0.05
    late_share: float = 0.01


def checks(backlog: Backlog | None, late: float, limits: Limits) -> tuple[Check, ...]:
    """The three checks of a step (*late*: its share of late sends). Without a measured
    window (too few samples) the backlog checks fail: nothing shows the system kept up."""
    out: list[Check] = []
    if backlog is None:
        note = "too few samples in the measured window to show the backlog held"
        out.append(Check("backlog_growth", "<=", 0.0, None, False, SOURCE, note))
        out.append(Check("delivery_behind", "<=", limits.behind_share, None, False, SOURCE, note))
    else:
        lim = growth_limit(backlog, z=limits.z, floor_share=limits.floor_share)
        out.append(
            Check(
                "backlog_growth",
                "<=",
                round(lim, 3),
                round(backlog.growth, 3),
                backlog.growth <= lim,
                SOURCE,
                f"backlog {backlog.start} -> {backlog.end} over {backlog.span_s:.1f}s, "
                f"slope {backlog.slope:.1f}/s, noise {backlog.noise:.1f}",
            )
        )
        acc, dlv = backlog.accepted_rate, backlog.delivered_rate
        behind = (acc - dlv) / acc if acc > 0 else 0.0
        out.append(
            Check(
                "delivery_behind",
                "<=",
                limits.behind_share,
                round(behind, 4),
                behind <= limits.behind_share,
                SOURCE,
                f"accepted {acc:.1f}/s, delivered {dlv:.1f}/s",
            )
        )
    out.append(
        Check(
            "late_sends", "<=", limits.late_share, round(late, 4), late <= limits.late_share, SOURCE
        )
    )
    return tuple(out)


def ratio(c: Check) -> float | None:
    """How near a check came to its limit (observed / limit; None when not comparable)."""
    if c.observed is None or c.limit <= 0:
        return None
    return c.observed / c.limit
