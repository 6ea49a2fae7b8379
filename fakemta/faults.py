"""Fault injection for the fake MTA: what can go wrong, where, how often (the pure parts).

A :class:`StageFault` makes one SMTP stage misbehave with a probability; an :class:`Outage`
makes the whole MTA misbehave for a window of time. :class:`FaultPlan` decides, from a
``random.Random`` the connection owns, which faults fire for one connection or transaction.
The protocol side is :mod:`fakemta.faultsmtp`; the specs themselves (and their parsers) are
:mod:`bench.config.faults`.

Decisions: each (connection, stage) for the connection stages, and each (transaction, stage)
for the transaction stages (:data:`TXN_STAGES`; a transaction starts at each MAIL), takes one
draw for the stage's outcome faults (every kind but "delay": their probabilities are laid end to
end, so they must add up to at most 1) and one draw per "delay" fault. The decision holds for
every command of that stage in that connection or transaction. Delays come before the outcome.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from bench.config.faults import Outage, StageFault, check_faults

OUTAGE_421 = "421 4.3.2 fakemta: outage, try again later"
QUEUE_FULL = "452 4.3.1 Insufficient system storage"
RELAY_DENIED = "550 5.7.1 <{}>: Relay access denied"


def fault_reply(stage: str, code: int) -> str:
    """The injected 4xx/5xx reply, e.g. ``451 4.3.0 fakemta: injected fault at rcpt``."""
    return f"{code} {code // 100}.3.0 fakemta: injected fault at {stage}"


def closing_reply(stage: str) -> str:
    """The injected 421 reply (the connection is closed after it)."""
    return f"421 4.3.2 fakemta: injected fault at {stage}, closing"


def banner_refused_reply() -> str:
    """What every command but QUIT gets after an injected 4xx/5xx greeting (RFC 5321 3.1)."""
    return "503 5.5.1 fakemta: injected fault at banner, only QUIT is accepted"


def user_share(address: str, seed: int) -> float:
    """Where a recipient's user part falls in [0, 1): stable across runs, for a given seed."""
    user = address.rpartition("@")[0] or address
    digest = hashlib.blake2b(
        user.lower().encode("utf-8", "surrogateescape"),
        digest_size=8,
        key=str(seed).encode()[:64],
    ).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class Decision:
    """What fires at one stage of one connection or transaction."""

    delays: tuple[StageFault, ...]
    outcome: StageFault | None


@dataclass(slots=True)
class FaultStats:
    """What the faults, outages and limits did."""

    injected: dict[str, int] = field(default_factory=dict)
    dropped: int = 0
    queue_full: int = 0
    outages: list[Outage] = field(default_factory=list)

    def count(self, fault: StageFault) -> None:
        self.injected[fault.key] = self.injected.get(fault.key, 0) + 1

    def as_dict(self) -> dict[str, object]:
        return {
            "faults_injected": dict(self.injected),
            "outages": [o.as_dict() for o in self.outages],
            "dropped": self.dropped,
            "queue_full": self.queue_full,
        }


class FaultPlan:
    """The configured faults by stage; :meth:`decide` draws what fires."""

    def __init__(self, faults: tuple[StageFault, ...], seed: int) -> None:
        check_faults(faults)
        self.seed = seed
        self.outcomes: dict[str, tuple[StageFault, ...]] = {}
        self.delays: dict[str, tuple[StageFault, ...]] = {}
        for f in faults:
            table = self.delays if f.kind == "delay" else self.outcomes
            table[f.stage] = (*table.get(f.stage, ()), f)
        self.stages = frozenset(self.outcomes) | frozenset(self.delays)

    def rng(self, connection: int) -> random.Random:
        """The draws of one connection: reproducible for a seed and connection number."""
        return random.Random(f"{self.seed}:faults:{connection}")

    def _aimed(self, f: StageFault, user: str | None) -> bool:
        if f.users >= 1.0:
            return True
        return user is not None and user_share(user, self.seed) < f.users

    def decide(self, stage: str, rng: random.Random, user: str | None = None) -> Decision | None:
        """Draw what fires at *stage*; *user*: the transaction's first recipient."""
        if stage not in self.stages:
            return None
        delays = tuple(
            f for f in self.delays.get(stage, ()) if rng.random() < f.probability
        )  # one draw per delay fault, whoever the user
        delays = tuple(f for f in delays if self._aimed(f, user))
        outcome: StageFault | None = None
        outcomes = self.outcomes.get(stage)
        if outcomes:
            u, edge = rng.random(), 0.0
            for f in outcomes:
                edge += f.probability
                if u < edge:
                    outcome = f if self._aimed(f, user) else None
                    break
        if not delays and outcome is None:
            return None
        return Decision(delays, outcome)
