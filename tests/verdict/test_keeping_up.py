"""The keeping-up checks: which fires, and when nothing was measured."""

from __future__ import annotations

from bench.core.backlog import Backlog
from bench.verdict.keeping_up import Limits, checks, ratio


def backlog(slope: float, noise: float, acc: float, dlv: float) -> Backlog:
    return Backlog(3.0, 31, 10, int(10 + slope * 3), 20.0, slope, noise, acc, dlv)


def by_name(cs: tuple[object, ...]) -> dict[str, object]:
    return {c.name: c for c in cs}  # type: ignore[attr-defined]


def test_keeping_up_passes_all_three() -> None:
    cs = checks(backlog(0.5, 3.0, 300, 299), 0.0, Limits())
    assert [c.name for c in cs] == ["backlog_growth", "delivery_behind", "late_sends"]
    assert all(c.passed for c in cs) and all(c.source == "keeping_up" for c in cs)


def test_a_growing_backlog_and_delivery_behind_fail() -> None:
    cs = by_name(checks(backlog(100.0, 3.0, 400, 300), 0.0, Limits()))
    assert not cs["backlog_growth"].passed  # type: ignore[attr-defined]
    assert cs["backlog_growth"].observed == 300.0  # type: ignore[attr-defined]
    assert not cs["delivery_behind"].passed  # type: ignore[attr-defined]
    assert cs["late_sends"].passed  # type: ignore[attr-defined]


def test_growth_within_the_noise_passes() -> None:
    c = checks(backlog(5.0, 10.0, 300, 295), 0.0, Limits())[0]
    assert c.passed and c.limit == 30.0 and ratio(c) == 0.5


def test_late_sends_fail_past_their_share() -> None:
    c = checks(backlog(0, 1, 300, 300), 0.02, Limits(late_share=0.01))[2]
    assert not c.passed and c.observed == 0.02


def test_nothing_measured_fails() -> None:
    cs = checks(None, 0.0, Limits())
    assert not cs[0].passed and not cs[1].passed and cs[0].observed is None
    assert ratio(cs[0]) is None
