"""Users supported and headroom from a rate and a population."""

from __future__ import annotations

import pytest

from bench.capacity.population import peak_rate, population_doc, users_supported
from bench.config.capacity import PopulationConfig


def test_users_supported_at_the_peak_hour() -> None:
    p = PopulationConfig(users=5000, messages_per_user_day=40, peak_hour_share=0.15, recipients=1.2)
    assert peak_rate(1, p) == pytest.approx(40 * 0.15 * 1.2 / 3600)
    assert peak_rate(5000, p) == pytest.approx(10.0)
    assert users_supported(100.0, p) == 50_000
    doc = population_doc(p, 100.0)
    assert doc is not None
    assert doc["expected_peak_rate"] == 10.0 and doc["headroom"] == 9.0  # 900 % to spare


def test_an_expected_peak_above_the_rate_is_negative_headroom() -> None:
    doc = population_doc(PopulationConfig(expected_peak=125.0), 100.0)
    assert doc is not None and doc["headroom"] == -0.2


def test_no_population_no_section_and_no_rate_no_users() -> None:
    assert population_doc(PopulationConfig(), 100.0) is None
    doc = population_doc(PopulationConfig(users=10), None)
    assert doc is not None and doc["users_supported"] is None and doc["headroom"] is None
