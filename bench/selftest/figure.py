"""One figure of ``mailsla selftest``: A and B measured per round, or an absolute value."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Figure:
    """One line of the table: A and B measured per round, the ratio of their medians."""

    name: str
    goal: str  # e.g. ">= 2.5"
    unit: str = "msgs/s"
    a_label: str = ""
    b_label: str = ""
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    value: float | None = None  # for absolute figures (latency, memory)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is not None:
            return self.value
        if not self.a or not self.b or statistics.median(self.b) == 0:
            return None
        return statistics.median(self.a) / statistics.median(self.b)

    @property
    def met(self) -> bool | None:
        r = self.ratio
        if r is None or not self.goal:  # a reference figure has no goal
            return None
        op, limit = self.goal.split()
        return r >= float(limit) if op == ">=" else r <= float(limit)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "goal": self.goal,
            "unit": self.unit,
            "a": {
                "label": self.a_label,
                "runs": self.a,
                "median": statistics.median(self.a) if self.a else None,
            },
            "b": {
                "label": self.b_label,
                "runs": self.b,
                "median": statistics.median(self.b) if self.b else None,
            },
            "ratio": self.ratio,
            "met": self.met,
            "note": self.note,
        }


Progress = Callable[[str], None]
