"""The ``[capacity]`` section: ``mailsla capacity``'s search (issue 16), and the user
population that turns the rate found into users supported. Beside
:mod:`bench.config.sections`, which holds the run's."""

from __future__ import annotations

from pydantic import Field, model_validator

from bench.config.fieldtypes import Duration
from bench.config.sections import MAX_RATE, MIN_RATE, _Model


class CapacityConfig(_Model):
    """The search: from ``start_rate`` (msgs/s) grow by ``growth`` until a step fails, bisect
    to ``precision``, all within ``budget``. Each step sends ``warmup`` then ``measure`` and
    waits at most ``drain`` for the rest; a borderline step runs up to ``repeats`` times;
    the confirmations at 80/100/120 % measure ``confirm`` each (0: none). The keeping-up
    limits: ``backlog_z`` (growth beyond this many times its noise) and ``backlog_floor``
    (... and beyond this share of the mail accepted), ``behind_share``, ``late_share``."""

    start_rate: float = Field(default=50.0, ge=MIN_RATE, le=MAX_RATE, allow_inf_nan=False)
    max_rate: float = Field(default=20_000.0, ge=MIN_RATE, le=MAX_RATE, allow_inf_nan=False)
    growth: float = Field(default=2.0, gt=1.0, le=16.0)
    precision: float = Field(default=0.05, gt=0.0, lt=0.5)
    budget: Duration = Field(default=600.0, gt=0)
    warmup: Duration = Field(default=2.0, ge=0)
    measure: Duration = Field(default=5.0, gt=0)
    drain: Duration = Field(default=10.0, gt=0)
    repeats: int = Field(default=3, ge=1, le=9)
    confirm: Duration = Field(default=15.0, ge=0)
    sample_interval: Duration = Field(default=0.1, ge=0.01, le=1.0)
    backlog_z: float = Field(default=3.0, gt=0)
    backlog_floor: float = Field(default=0.01, ge=0, lt=1)
    behind_share: float = Field(default=0.05, ge=0, lt=1)
    late_share: float = Field(default=0.01, ge=0, lt=1)

    @model_validator(mode="after")
    def _check(self) -> CapacityConfig:
        if self.max_rate < self.start_rate:
            raise ValueError(f"max_rate {self.max_rate:g} is below start_rate {self.start_rate:g}")
        return self


class PopulationConfig(_Model):
    """A domain's users: ``users`` mailboxes sending ``messages_per_user_day`` each, of which
    ``peak_hour_share`` go in the busiest hour, to ``recipients`` each on average (each
    recipient a delivery); ``expected_peak`` (msgs/s, optional): the peak to plan for."""

    users: int | None = Field(default=None, ge=1)
    messages_per_user_day: float = Field(default=40.0, gt=0)
    peak_hour_share: float = Field(default=0.15, gt=0, le=1)
    recipients: float = Field(default=1.0, ge=1)
    expected_peak: float | None = Field(default=None, gt=0)
