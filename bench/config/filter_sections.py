"""The scenario tables of labelled traffic and the fake MTA's filter: ``message.mix`` and
``[fakemta.filter]`` (issue 17), as frozen pydantic models. Pure."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.config.filters import SPAM_ACTIONS, VIRUS_ACTIONS, FilterSpec


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FilterConfig(_Model):
    """The fake MTA's filter stage (``[fakemta.filter]``; :mod:`bench.config.filters`)."""

    spam_detection: float = Field(default=0.98, ge=0, le=1)
    virus_detection: float = Field(default=0.98, ge=0, le=1)
    false_positive: float = Field(default=0.001, ge=0, le=1)
    spam_action: Literal[SPAM_ACTIONS] = "reject"  # type: ignore[valid-type]
    virus_action: Literal[VIRUS_ACTIONS] = "reject"  # type: ignore[valid-type]
    subject_tag: str = Field(default="***SPAM***", min_length=1, max_length=40, pattern=r"^[ -~]+$")

    def spec(self) -> FilterSpec:
        """The plain spec the fake MTA reads."""
        return FilterSpec(**self.model_dump())


class ClassMix(_Model):
    """``message.mix``: the share of each class of labelled traffic (they add up to 1)."""

    ham: float = Field(default=0.0, ge=0, le=1)
    spam: float = Field(default=0.0, ge=0, le=1)
    virus: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> ClassMix:
        total = self.ham + self.spam + self.virus
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"the shares of ham, spam and virus add up to {total:g}, not 1")
        return self

    def shares(self) -> dict[str, float]:
        return {"ham": self.ham, "spam": self.spam, "virus": self.virus}
