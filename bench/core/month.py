"""The SLA month in a time zone, and its error budget. Pure (zoneinfo reads the tz database).

The SLA (``../shared/sla-source.md``) allows 0.1 % of a 30-day month — 43.2 minutes — of fault.
A real month is 28 to 31 days, and a DST change makes it an hour shorter or longer, so the
budget here is **scaled by the month's real length**: 0.1 % of its minutes (44.64 for a 31-day
month, 43.2 for 30, 40.32 for 28). The month starts at ``boundary_day`` 00:00 local time in
``tz`` and ends at the same point of the next month.

Burn rate, as in the SRE workbook: the share of observed minutes that were faults, over the share
the SLA allows (1.0 spends the budget exactly by month end). The projection to month end assumes
the rest of the month burns at the month-to-date rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

SLA_RATE = 0.999
MINUTES_30_DAYS = 30 * 24 * 60


def month_bounds(at: datetime, tz: str = "UTC", boundary_day: int = 1) -> tuple[datetime, datetime]:
    """The SLA month holding the instant *at* (aware): its start and end, aware, in *tz*."""
    if at.tzinfo is None:
        raise ValueError("month_bounds needs an aware datetime")
    if not 1 <= boundary_day <= 28:
        raise ValueError("boundary_day must be 1..28")
    zone = ZoneInfo(tz)
    local = at.astimezone(zone)
    y, m = local.year, local.month
    start = datetime(y, m, boundary_day, tzinfo=zone)
    if local < start:
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        start = datetime(y, m, boundary_day, tzinfo=zone)
    ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
    return start, datetime(ny, nm, boundary_day, tzinfo=zone)


def minutes_between(a: datetime, b: datetime) -> float:
    """Real elapsed minutes from *a* to *b* (through UTC, so DST shifts count)."""
    return (b.astimezone(UTC) - a.astimezone(UTC)) / timedelta(minutes=1)


def budget_minutes(month_minutes: float, rate: float = SLA_RATE) -> float:
    """Fault minutes the SLA allows in a month of *month_minutes* (43.2 for 30 days)."""
    return month_minutes * (1 - rate)


@dataclass(frozen=True, slots=True)
class Budget:
    month_min: float  # the month's real length
    elapsed_min: float  # minutes of it observed so far
    fault_min: float  # fault minutes so far

    @property
    def budget_min(self) -> float:
        return budget_minutes(self.month_min)

    @property
    def spent_share(self) -> float:
        """Share of the month's budget spent (1.0: all of it)."""
        return self.fault_min / self.budget_min

    @property
    def burn_rate(self) -> float | None:
        """Fault share of the elapsed minutes over the allowed share; None before any."""
        if self.elapsed_min <= 0:
            return None
        return (self.fault_min / self.elapsed_min) / (1 - SLA_RATE)

    @property
    def projected_fault_min(self) -> float | None:
        """Fault minutes at month end if the rest burns at the month-to-date rate."""
        if self.elapsed_min <= 0:
            return None
        return self.fault_min * self.month_min / min(self.elapsed_min, self.month_min)

    @property
    def no_fault_rate(self) -> float | None:
        if self.elapsed_min <= 0:
            return None
        return 1 - self.fault_min / self.elapsed_min

    def as_dict(self) -> dict[str, float | None]:
        return {
            "month_min": self.month_min,
            "elapsed_min": self.elapsed_min,
            "fault_min": self.fault_min,
            "budget_min": self.budget_min,
            "budget_spent_share": self.spent_share,
            "burn_rate": self.burn_rate,
            "projected_fault_min": self.projected_fault_min,
            "projected_budget_share": (
                None
                if self.projected_fault_min is None
                else self.projected_fault_min / self.budget_min
            ),
            "no_fault_rate": self.no_fault_rate,
        }
