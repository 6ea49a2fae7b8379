"""What a rate means for a real domain: the users it supports at the population's peak hour,
and with an expected peak, the headroom. Pure."""

from __future__ import annotations

from typing import Any

from bench.config.capacity import PopulationConfig

HOUR_S = 3600.0


def peak_rate(users: float, p: PopulationConfig) -> float:
    """Deliveries a second in the busiest hour from *users* (each message to ``recipients``)."""
    return users * p.messages_per_user_day * p.peak_hour_share * p.recipients / HOUR_S


def users_supported(rate: float, p: PopulationConfig) -> int:
    """The users whose peak hour *rate* (msgs/s) carries."""
    per_user = peak_rate(1, p)
    return int(rate / per_user)


def population_doc(p: PopulationConfig, rate: float | None) -> dict[str, Any] | None:
    """capacity.json's ``population`` (None: the scenario gives no population and no peak).

    ``headroom``: the rate found over the expected peak (``expected_peak``, or the peak of
    ``users``), less one: 0.25 means 25 % to spare, negative means short."""
    if p.users is None and p.expected_peak is None:
        return None
    expected = p.expected_peak
    if expected is None and p.users is not None:
        expected = peak_rate(p.users, p)
    doc: dict[str, Any] = {
        **p.model_dump(mode="json"),
        "per_user_peak_rate": float(f"{peak_rate(1, p):.6g}"),
        "expected_peak_rate": round(expected, 3) if expected is not None else None,
        "users_supported": users_supported(rate, p) if rate is not None else None,
        "headroom": None,
    }
    if rate is not None and expected:
        doc["headroom"] = round(rate / expected - 1, 4)
    return doc
