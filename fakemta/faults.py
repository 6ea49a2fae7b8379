"""Fault injection for the fake MTA: what can go wrong, where, how often (the pure parts).

A :class:`StageFault` makes one SMTP stage misbehave with a probability; an :class:`Outage`
makes the whole MTA misbehave for a window of time. :class:`FaultPlan` decides, from a
``random.Random`` the connection owns, which faults fire for one connection or transaction.
The protocol side is :mod:`fakemta.faultsmtp`. CLI syntax: :func:`parse_fault`
(``STAGE:KIND:PROB[:ARG]``) and :func:`parse_outage` (``AT:DURATION:KIND``).

Decisions: each (connection, stage) for the connection stages, and each (transaction, stage)
for the transaction stages (:data:`TXN_STAGES`; a transaction starts at each MAIL), takes one
draw for the stage's outcome faults (every kind but "delay": their probabilities are laid end to
end, so they must add up to at most 1) and one draw per "delay" fault. The decision holds for
every command of that stage in that connection or transaction. Delays come before the outcome.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from dataclasses import dataclass, field

from fakemta.delays import Delay, parse_delay, parse_duration

# connect: before the greeting; banner: the greeting; body: after the 354, before the message is
# read (smtp-sink -H / -A); dot: the reply after the end of DATA
CONN_STAGES = ("connect", "banner", "ehlo", "starttls", "auth", "rset", "noop", "vrfy", "quit")
TXN_STAGES = ("mail", "rcpt", "data", "body", "dot")
STAGES = CONN_STAGES + TXN_STAGES
USER_STAGES = ("rcpt", "data", "body", "dot")  # the stages where the first recipient is known
KINDS = ("4xx", "5xx", "421", "disconnect", "stall", "delay", "accept_drop")
OUTAGE_KINDS = ("refuse", "421", "stall", "blackhole")
DEFAULT_CODE = {"4xx": 451, "5xx": 554}

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


@dataclass(frozen=True, slots=True)
class StageFault:
    """One stage misbehaving with *probability*; *users*: the share of recipients aimed at."""

    stage: str
    kind: str
    probability: float
    code: int | None = None
    duration: Delay | None = None
    users: float = 1.0

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"fault stage {self.stage!r}: use one of {', '.join(STAGES)}")
        if self.kind not in KINDS:
            raise ValueError(f"fault kind {self.kind!r}: use one of {', '.join(KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"fault probability {self.probability!r}: must be in 0..1")
        if self.kind == "accept_drop" and self.stage != "dot":
            raise ValueError("fault kind 'accept_drop' is for the 'dot' stage only")
        if self.code is not None:
            low = {"4xx": 400, "5xx": 500}.get(self.kind)
            if low is None:
                raise ValueError(f"fault kind {self.kind!r} takes no reply code")
            if not low <= self.code < low + 100:
                raise ValueError(f"fault {self.kind} reply code {self.code}: not a {self.kind}")
        if self.kind in ("stall", "delay"):
            if self.duration is None:
                raise ValueError(f"fault kind {self.kind!r} needs a duration")
        elif self.duration is not None:
            raise ValueError(f"fault kind {self.kind!r} takes no duration")
        if not 0.0 <= self.users <= 1.0:
            raise ValueError(f"fault users {self.users!r}: must be in 0..1")
        if self.users < 1.0 and self.stage not in USER_STAGES:
            raise ValueError(
                f"fault users < 1 at stage {self.stage!r}: recipients are known only at "
                f"{', '.join(USER_STAGES)}"
            )

    @property
    def reply_code(self) -> int:
        """The 4xx/5xx code replied (451 and 554 unless given)."""
        return self.code if self.code is not None else DEFAULT_CODE.get(self.kind, 0)

    @property
    def key(self) -> str:
        """``stage.kind``, as counted in the stats."""
        return f"{self.stage}.{self.kind}"

    def __str__(self) -> str:
        text = f"{self.stage}:{self.kind}:{self.probability:g}"
        if self.code is not None:
            text += f":{self.code}"
        if self.duration is not None:
            text += f":{self.duration}"
        if self.users < 1.0:
            text += f" (users {self.users:g})"
        return text


@dataclass(frozen=True, slots=True)
class Outage:
    """The whole MTA misbehaving from *at* seconds after start, for *duration* seconds."""

    at: float
    duration: float
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in OUTAGE_KINDS:
            raise ValueError(f"outage kind {self.kind!r}: use one of {', '.join(OUTAGE_KINDS)}")
        if self.at < 0:
            raise ValueError(f"outage start {self.at!r}: must be >= 0")
        if self.duration <= 0:
            raise ValueError(f"outage duration {self.duration!r}: must be > 0")

    @property
    def end(self) -> float:
        return self.at + self.duration

    def as_dict(self) -> dict[str, object]:
        return {"at": self.at, "duration": self.duration, "kind": self.kind}

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:g}s for {self.duration:g}s"


def check_faults(faults: tuple[StageFault, ...]) -> None:
    """Raise ValueError unless the outcome faults of each stage add up to probability <= 1."""
    total: dict[str, float] = {}
    for f in faults:
        if not isinstance(f, StageFault):
            raise ValueError(f"not a StageFault: {f!r}")
        if f.kind != "delay":
            total[f.stage] = total.get(f.stage, 0.0) + f.probability
    for stage, p in total.items():
        if p > 1.0 + 1e-9:
            raise ValueError(
                f"faults at stage {stage!r}: probabilities add up to {p:g} > 1 "
                "(only 'delay' faults may overlap the others)"
            )


def check_outages(outages: tuple[Outage, ...]) -> None:
    """Raise ValueError if two outages overlap."""
    spans = sorted(outages, key=lambda o: o.at)
    for a, b in itertools.pairwise(spans):
        if b.at < a.end:
            raise ValueError(f"outages overlap: {a} and {b}")


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


def parse_fault(text: str) -> StageFault:
    """Parse ``STAGE:KIND:PROB[:ARG]``: ARG is the reply code for 4xx/5xx and the duration
    distribution for stall/delay (``rcpt:4xx:0.1:450``, ``dot:stall:0.01:const(5s)``)."""
    parts = text.strip().split(":", 3)
    if len(parts) < 3:
        raise ValueError(f"{text!r} is not STAGE:KIND:PROB[:ARG]")
    stage, kind, prob = (p.strip().lower() for p in parts[:3])
    arg = parts[3].strip() if len(parts) == 4 else None
    try:
        probability = float(prob)
    except ValueError:
        raise ValueError(f"{text!r}: probability {prob!r} is not a number") from None
    code: int | None = None
    duration: Delay | None = None
    if arg:
        if kind in DEFAULT_CODE:
            if not arg.isdigit():
                raise ValueError(f"{text!r}: reply code {arg!r} is not a number")
            code = int(arg)
        elif kind in ("stall", "delay"):
            try:
                duration = parse_delay(arg)
            except ValueError as exc:
                raise ValueError(f"{text!r}: {exc}") from None
        else:
            raise ValueError(f"{text!r}: kind {kind!r} takes no argument")
    elif kind in ("stall", "delay"):
        raise ValueError(f"{text!r}: {kind} needs a duration, as in {stage}:{kind}:{prob}:5s")
    try:
        return StageFault(stage, kind, probability, code=code, duration=duration)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None


def parse_outage(text: str) -> Outage:
    """Parse ``AT:DURATION:KIND``, such as ``30s:10s:refuse``."""
    parts = [p.strip() for p in text.strip().split(":")]
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not AT:DURATION:KIND (as in 30s:10s:refuse)")
    try:
        return Outage(parse_duration(parts[0]), parse_duration(parts[1]), parts[2].lower())
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
