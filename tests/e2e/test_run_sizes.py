"""``message.sizes = "real"`` end to end: what the fake MTA queued is what the scenario asked
for, on both generator paths (one process, and worker processes). The single-process path once
built its messages without ``sizes``, so a "real"-sized run sent every message at the cap (2 MiB
instead of ~52 KiB on average) and capacity steps meant to send real mail's sizes sent 40 times
the bytes while capacity.json said otherwise."""

from __future__ import annotations

import time

import pytest

from bench.config.scenario import load as load_scenario
from bench.core.message import MessageFactory
from tests.e2e.test_run import assert_accounted, result, run_scenario, scenario

REAL = """
name = "sizes"
seed = 5
[fakemta]
processing_delay = "uniform(1ms, 5ms)"
[load]
rate = 50
duration = "2s"
drain = "10s"
sessions = 4
[message]
size = "2MiB"
sizes = "real"
"""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_real_sizes_reach_the_mail_system_as_asked(tmp_path, workers: int) -> None:  # type: ignore[no-untyped-def]
    proc, out = run_scenario(tmp_path, REAL, f"load.workers={workers}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = result(out)
    assert_accounted(doc)
    n = doc["counts"]["accepted"]
    assert n == doc["counts"]["planned"] == 100 == doc["fakemta"]["queued"]
    # What message seq carries after DATA, less the final ".\r\n" (no line of it starts with a
    # dot): the same factory the run used, so the expected bytes are exact but for the Date
    # and id lengths, which differ by a few bytes a message.
    sc = load_scenario(scenario(tmp_path, REAL))
    factory = MessageFactory.for_scenario(sc, "20261204T000000Z-sizes", b"k" * 32)
    expected = sum(len(factory.payload(s, time.time_ns())) - 3 for s in range(n))
    queued = doc["fakemta"]["queued_bytes"]
    assert queued == pytest.approx(expected, rel=0.005)
    assert queued / n < 200 * 1024  # real mail's mean is ~52 KiB; the cap is 2 MiB
