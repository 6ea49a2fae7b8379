"""The post office's own replies (their text, as its handler hooks answer) and its on-purpose
refusals (the SMTP replies are :mod:`bench.smtp.replies`). Pure."""

from __future__ import annotations

import random

DELIVERED = "250 2.0.0 Ok: delivered"
DEFERRED = "451 4.3.0 post office: deferred on purpose, try again later"
REFUSED = "554 5.3.0 post office: refused on purpose"


class Refusals:
    """The post office misbehaving on purpose, so the system's retries can be measured: at
    the end of DATA a message is deferred (451: the relay should retry) with probability
    *defer*, or refused (554: it should bounce) with probability *refuse*; seeded. Refused
    and deferred messages are not received (the sink is not called)."""

    def __init__(self, defer: float = 0.0, refuse: float = 0.0, seed: int = 1) -> None:
        self.defer, self.refuse = defer, defer + refuse
        self.rng = random.Random(f"postoffice-{seed}")
        self.deferred = self.refused = 0

    def reply(self) -> str | None:
        """The refusal for this message, or None to accept it."""
        r = self.rng.random()
        if r < self.defer:
            self.deferred += 1
            return DEFERRED
        if r < self.refuse:
            self.refused += 1
            return REFUSED
        return None
