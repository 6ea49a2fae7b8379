from datetime import UTC, datetime

import pytest

from bench.core.month import Budget, budget_minutes, minutes_between, month_bounds


def test_calendar_month_in_utc() -> None:
    s, e = month_bounds(datetime(2026, 2, 14, 12, tzinfo=UTC))
    assert (s.month, s.day, e.month, e.day) == (2, 1, 3, 1)
    assert minutes_between(s, e) == 28 * 1440
    assert budget_minutes(minutes_between(s, e)) == pytest.approx(40.32)
    assert budget_minutes(30 * 1440) == pytest.approx(43.2)


def test_boundary_depends_on_time_zone() -> None:
    at = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)  # already April 1 in Shanghai
    assert month_bounds(at, "UTC")[0].month == 3
    s, _ = month_bounds(at, "Asia/Shanghai")
    assert (s.month, s.utcoffset().total_seconds()) == (4, 8 * 3600)  # type: ignore[union-attr]


def test_dst_month_is_an_hour_short() -> None:
    s, e = month_bounds(datetime(2026, 3, 15, tzinfo=UTC), "Europe/Berlin")
    assert minutes_between(s, e) == 31 * 1440 - 60
    s, e = month_bounds(datetime(2026, 10, 15, tzinfo=UTC), "Europe/Berlin")
    assert minutes_between(s, e) == 31 * 1440 + 60


def test_boundary_day_and_year_wrap() -> None:
    s, e = month_bounds(datetime(2026, 1, 3, tzinfo=UTC), boundary_day=5)
    assert (s.year, s.month, s.day, e.year, e.month) == (2025, 12, 5, 2026, 1)
    with pytest.raises(ValueError):
        month_bounds(datetime(2026, 1, 3))


def test_budget_burn_and_projection() -> None:
    b = Budget(month_min=30 * 1440, elapsed_min=10 * 1440, fault_min=14.4)
    assert b.budget_min == pytest.approx(43.2)
    assert b.spent_share == pytest.approx(1 / 3)
    assert b.burn_rate == pytest.approx(1.0)  # on course to spend it exactly
    assert b.projected_fault_min == pytest.approx(43.2)
    fast = Budget(month_min=30 * 1440, elapsed_min=60, fault_min=6)
    assert fast.burn_rate == pytest.approx(100.0)
    assert Budget(30 * 1440, 0, 0).burn_rate is None
