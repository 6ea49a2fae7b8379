"""Durations and delay distributions, parsed from the strings users write.

``parse_duration("250ms")`` gives seconds; ``parse_delay("uniform(5ms, 50ms)")`` gives a frozen,
picklable :class:`Delay` whose ``sample(rng)`` draws one delay in seconds. Errors are
:class:`ValueError` quoting the input, so a caller can put them next to the field they came from.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(us|µs|ms|s|min|m|h)\s*$")
_CALL = re.compile(r"^\s*([a-z_]+)\s*\((.*)\)\s*$", re.S)

DURATION_HINT = "use a number and a unit: 250ms, 20s, 5m, 1h"


MAX_DURATION_S = 31 * 86400.0  # a month: the longest any duration may be (monitor's span)


def parse_duration(text: str) -> float:
    """Parse ``"250ms"``, ``"20s"``, ``"5m"``, ``"1h"`` (also ``us``) into seconds, from 0 to
    :data:`MAX_DURATION_S` (a month); longer, or a number too long to be finite, is refused."""
    m = _DURATION.match(text) if len(text) <= 64 else None
    if not m:
        raise ValueError(f"{text!r} is not a duration ({DURATION_HINT})")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not seconds <= MAX_DURATION_S:  # also catches inf and nan
        raise ValueError(f"{text!r} is longer than 31 days, the longest duration mailsla takes")
    return seconds


@dataclass(frozen=True, slots=True)
class Delay:
    """A delay distribution: ``const``, ``uniform``, ``exp`` or ``lognormal`` (seconds)."""

    kind: str
    a: float = 0.0
    b: float = 0.0
    text: str = ""

    def sample(self, rng: random.Random) -> float:
        """Draw one delay in seconds."""
        if self.kind == "const":
            return self.a
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "exp":
            return rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        # lognormal: a = median, b = sigma
        return rng.lognormvariate(math.log(self.a), self.b) if self.a > 0 else 0.0

    @property
    def mean(self) -> float:
        """The distribution's mean in seconds."""
        if self.kind == "const":
            return self.a
        if self.kind == "uniform":
            return (self.a + self.b) / 2
        if self.kind == "exp":
            return self.a
        return self.a * math.exp(self.b * self.b / 2)

    def __str__(self) -> str:
        return self.text or f"{self.kind}({self.a}, {self.b})"


_FORMS = {
    "const": "const(10ms)",
    "uniform": "uniform(5ms, 50ms)",
    "exp": "exp(20ms)",
    "lognormal": "lognormal(20ms, 0.5)",
}
DELAY_HINT = "use " + ", ".join(_FORMS.values())


def parse_delay(text: str) -> Delay:
    """Parse a distribution such as ``"uniform(5ms, 50ms)"``; a bare duration means const."""
    m = _CALL.match(text)
    if not m:
        try:
            return Delay("const", parse_duration(text), text=text.strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a delay distribution ({DELAY_HINT})") from None
    name, args = m.group(1), [p.strip() for p in m.group(2).split(",")]
    if name not in _FORMS:
        raise ValueError(f"{text!r}: unknown distribution {name!r} ({DELAY_HINT})")
    want = 1 if name in ("const", "exp") else 2
    if len(args) != want or not all(args):
        raise ValueError(f"{text!r}: {name} takes {want} argument(s), as in {_FORMS[name]}")
    try:
        a = parse_duration(args[0])
        if name == "lognormal":
            b = float(args[1])
        elif want == 2:
            b = parse_duration(args[1])
        else:
            b = 0.0
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if name == "uniform" and b < a:
        raise ValueError(f"{text!r}: uniform(a, b) needs a <= b")
    if name == "lognormal" and not (0 <= b <= 10):
        raise ValueError(f"{text!r}: lognormal sigma must be between 0 and 10")
    return Delay(name, a, b, text=text.strip())
