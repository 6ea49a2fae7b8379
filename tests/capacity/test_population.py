"""Users supported and headroom from a rate and a population."""

from __future__ import annotations

import math

import pytest

from bench.capacity.population import StepMail, peak_rate, population_doc, users_supported
from bench.config.capacity import PopulationConfig
from bench.core.corpus import mean_real_size, real_size_pool


def test_users_supported_at_the_peak_hour() -> None:
    p = PopulationConfig(users=5000, messages_per_user_day=40, peak_hour_share=0.15, recipients=1.2)
    assert peak_rate(1, p) == pytest.approx(40 * 0.15 * 1.2 / 3600)
    assert peak_rate(5000, p) == pytest.approx(10.0)
    assert users_supported(100.0, p) == 50_000
    doc = population_doc(p, 100.0)
    assert doc is not None
    # the peak: 5000 × 40 × 0.15 / 3600 = 8.333 msgs/s (10 deliveries/s); 900 % to spare
    assert doc["expected_peak_rate"] == 8.333 and doc["headroom"] == 9.0


def test_an_expected_peak_above_the_rate_is_negative_headroom() -> None:
    doc = population_doc(PopulationConfig(expected_peak=125.0), 100.0)
    assert doc is not None and doc["headroom"] == -0.2


def test_no_population_no_section_and_no_rate_no_users() -> None:
    assert population_doc(PopulationConfig(), 100.0) is None
    doc = population_doc(PopulationConfig(users=10), None)
    assert doc is not None and doc["users_supported"] is None and doc["headroom"] is None


def test_the_built_in_size_distributions_mean_by_hand() -> None:
    # Each log-linear segment s0..2·s0 averages s0·(2 − 1)/ln 2 = s0/ln 2; the rest is cut.
    first = 0.235 * 1024 / math.log(2)  # the 23.5 % between 1 and 2 KiB: ~1,477 B on average
    assert mean_real_size(2048) == pytest.approx(first + 0.765 * 2048)  # 1,913.9
    second = (0.492 - 0.235) * 2048 / math.log(2)
    assert mean_real_size(4096) == pytest.approx(first + second + 0.508 * 4096)
    assert 50_000 < mean_real_size(None) < 56_000  # ~52 KiB: the heavy tail dominates
    pool = real_size_pool(64, 2 << 20)
    assert len(pool) == 64 and min(pool) >= 1024 and max(pool) <= 2 << 20


def test_recipients_scale_the_deliveries() -> None:
    # 100 msgs/s of 2-recipient messages are 200 deliveries/s; a user's peak is
    # 40 × 0.15 × 1 / 3600 = 1/600 deliveries/s: 120,000 users.
    p = PopulationConfig(users=1000, messages_per_user_day=40, peak_hour_share=0.15)
    assert users_supported(100.0, p, StepMail(recipients=2)) == 120_000


def test_other_step_sizes_give_the_smaller_figure_and_say_so() -> None:
    p = PopulationConfig(users=1000, messages_per_user_day=40, peak_hour_share=0.15)
    mean = mean_real_size(None)
    mail = StepMail(recipients=1, mean_bytes=mean / 10, sizes="fixed", cap=int(mean / 10))
    doc = population_doc(p, 100.0, mail)
    assert doc is not None
    assert doc["users_per_message"] == 60_000  # 100 / (1/600)
    assert doc["users_by_bytes"] == 6_000  # a tenth of the bytes a message
    assert doc["users_supported"] == 6_000 and "a bound" in doc["size_basis"]
    assert doc["headroom"] == pytest.approx(5.0)  # 6,000 users for 1,000
    same = population_doc(p, 100.0)
    assert same is not None and same["users_supported"] == 60_000
