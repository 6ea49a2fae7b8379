"""bench.run.conclude: a run whose intervals came out negative says so."""

from __future__ import annotations

from bench.core.metrics import MetricSet
from bench.run.conclude import clamped_warnings


def test_negative_intervals_are_flagged_and_never_below_zero() -> None:
    ms = MetricSet()
    for v in (-7_750_000, 2_000_000, 3_000_000):
        ms["send_delay"].record(v)
    ms["submit_latency"].record(1_000_000)
    summaries = ms.summaries()
    assert summaries["send_delay"]["min_s"] == 0.0
    assert summaries["send_delay"]["mean_s"] > 0
    assert summaries["send_delay"]["negative"] == 1
    warnings = clamped_warnings(summaries)
    assert len(warnings) == 1
    assert warnings[0].startswith("send_delay: 1 of 3 intervals came out negative")
