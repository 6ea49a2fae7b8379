"""What a rate means for a real domain: the users it supports at the population's peak hour,
and with an expected peak, the headroom. Pure.

The population's mail is sized as real mail is (the built-in distribution of the field notes,
:data:`bench.core.corpus.REAL_SIZES`, mean ~52 KiB), and a message to k recipients is k
deliveries. The rate found is in the steps' messages: with a population the driver sends real
mail's sizes (:data:`POPULATION_SIZE_CAP`), so the figure holds as measured. When the steps
sent other sizes, the users are given both ways, as if each message cost the same
(``users_per_message``) and as if the cost were in bytes (``users_by_bytes``), and
``users_supported`` is the smaller: a bound, said so in ``size_basis``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.config.capacity import PopulationConfig
from bench.core.corpus import REAL_SIZES, mean_real_size

HOUR_S = 3600.0
POPULATION_SIZE_CAP = REAL_SIZES[-1][0]  # 2 MiB: the whole distribution
POPULATION_MEAN_BYTES = mean_real_size(None)  # ~52 KiB: real mail's mean size


@dataclass(frozen=True, slots=True)
class StepMail:
    """What the steps sent: *recipients* a message, *mean_bytes* a message, and how sized."""

    recipients: int = 1
    mean_bytes: float = POPULATION_MEAN_BYTES
    sizes: str = "real"
    cap: int = POPULATION_SIZE_CAP


def peak_rate(users: float, p: PopulationConfig) -> float:
    """Deliveries a second in the busiest hour from *users* (each message to ``recipients``)."""
    return users * p.messages_per_user_day * p.peak_hour_share * p.recipients / HOUR_S


def users_both_ways(rate: float, p: PopulationConfig, mail: StepMail) -> tuple[int, int]:
    """(users as if a message's cost were the same whatever its size, users as if the cost
    were in bytes) that *rate* steps' messages a second carry."""
    deliveries = rate * mail.recipients
    per_user = peak_rate(1, p)
    per_message = deliveries / per_user
    by_bytes = per_message * mail.mean_bytes / POPULATION_MEAN_BYTES
    return int(per_message + 1e-9), int(by_bytes + 1e-9)


def same_sizes(mail: StepMail) -> bool:
    return mail.sizes == "real" and mail.cap >= POPULATION_SIZE_CAP


def users_supported(rate: float, p: PopulationConfig, mail: StepMail | None = None) -> int:
    """The users whose peak hour *rate* (the steps' msgs/s) carries (the smaller figure when
    the steps' sizes were not the population's)."""
    mail = mail or StepMail()
    per_message, by_bytes = users_both_ways(rate, p, mail)
    return per_message if same_sizes(mail) else min(per_message, by_bytes)


def size_basis(mail: StepMail) -> str:
    pop = POPULATION_MEAN_BYTES
    if same_sizes(mail):
        return f"the steps sent real mail's sizes (mean {pop / 1024:.1f} KiB), as the population's"
    return (
        f"the steps sent {mail.sizes} sizes (mean {mail.mean_bytes / 1024:.1f} KiB), the "
        f"population's mail is real mail's (mean {pop / 1024:.1f} KiB): users_supported is the "
        "smaller of the per-message and by-bytes figures, a bound"
    )


def population_doc(
    p: PopulationConfig, rate: float | None, mail: StepMail | None = None
) -> dict[str, Any] | None:
    """capacity.json's ``population`` (None: the scenario gives no population and no peak).

    ``expected_peak_rate``: the population's messages a second at its peak (``expected_peak``,
    or the peak of ``users``); ``headroom``: what the rate found carries of such messages over
    it, less one: 0.25 means 25 % to spare, negative means short."""
    if p.users is None and p.expected_peak is None:
        return None
    mail = mail or StepMail()
    per_user_msgs = p.messages_per_user_day * p.peak_hour_share / HOUR_S
    expected = p.expected_peak
    if expected is None and p.users is not None:
        expected = p.users * per_user_msgs
    doc: dict[str, Any] = {
        **p.model_dump(mode="json"),
        "per_user_peak_rate": float(f"{peak_rate(1, p):.6g}"),
        "expected_peak_rate": round(expected, 3) if expected is not None else None,
        "users_supported": None,
        "users_per_message": None,
        "users_by_bytes": None,
        "headroom": None,
        "size_distribution": "real mail (field notes), 1 KiB to 2 MiB",
        "population_mean_bytes": round(POPULATION_MEAN_BYTES),
        "step_mean_bytes": round(mail.mean_bytes),
        "step_sizes": mail.sizes,
        "step_recipients": mail.recipients,
        "size_basis": size_basis(mail),
    }
    if rate is None:
        return doc
    per_message, by_bytes = users_both_ways(rate, p, mail)
    users = users_supported(rate, p, mail)
    doc.update(users_supported=users, users_per_message=per_message, users_by_bytes=by_bytes)
    if expected:
        doc["headroom"] = round(users * per_user_msgs / expected - 1, 4)
    return doc
