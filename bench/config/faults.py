"""Fault specs, as a scenario's ``[fakemta]`` section or ``mailsla fakemta --fault`` writes
them: which SMTP stage misbehaves, how, how often, for which share of users; and outages of the
whole system. Pure. The fake MTA acts on them (:mod:`fakemta.faults`, :mod:`fakemta.faultsmtp`).

CLI syntax: :func:`parse_fault` (``STAGE:KIND:PROB[:ARG]``) and :func:`parse_outage`
(``AT:DURATION:KIND``).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from bench.config.delays import Delay, parse_delay, parse_duration

# connect: before the greeting; banner: the greeting; body: after the 354, before the message is
# read (smtp-sink -H / -A); dot: the reply after the end of DATA
CONN_STAGES = ("connect", "banner", "ehlo", "starttls", "auth", "rset", "noop", "vrfy", "quit")
TXN_STAGES = ("mail", "rcpt", "data", "body", "dot")
STAGES = CONN_STAGES + TXN_STAGES
USER_STAGES = ("rcpt", "data", "body", "dot")  # the stages where the first recipient is known
KINDS = ("4xx", "5xx", "421", "disconnect", "stall", "delay", "accept_drop")
OUTAGE_KINDS = ("refuse", "421", "stall", "blackhole")
DEFAULT_CODE = {"4xx": 451, "5xx": 554}


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
