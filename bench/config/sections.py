"""The sections of a scenario file ([system], [fakemta], [postoffice], [mailbox], [load],
[message], [sla], [results]) as frozen pydantic models. Pure."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bench.config.delays import parse_delay
from bench.config.faults import KINDS as FAULT_KINDS
from bench.config.faults import STAGES as FAULT_STAGES
from bench.config.faults import USER_STAGES
from bench.config.fieldtypes import Address, DelayDist, Duration, Hostname, Size, ThresholdT
from bench.config.filter_sections import ClassMix, FilterConfig
from bench.config.names import PROFILES
from bench.config.thresholds import Threshold, parse_threshold
from bench.config.units import format_duration


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class AuthConfig(_Model):
    """SMTP AUTH for submission; the credentials are read from these environment variables
    when the run starts and are never written anywhere."""

    mechanism: Literal["plain", "login"] = "plain"
    user_env: EnvName = "MAILSLA_SMTP_USER"
    password_env: EnvName = "MAILSLA_SMTP_PASSWORD"


class SystemConfig(_Model):
    kind: Literal["fakemta", "smtp"] = "fakemta"
    submit: Address | None = None
    inbound: Address | None = None
    ehlo: Hostname = "loadgen.mailsla.test"
    tls: Literal["off", "opportunistic", "required"] = "off"
    ca_file: str | None = None  # trust these CAs instead of the system's
    tls_insecure: bool = False  # skip certificate verification (never by default)
    server_name: Hostname | None = None  # name the certificate must carry; default: the host
    auth: AuthConfig | None = None


class FaultConfig(_Model):
    """One injected fault: at *stage*, with *probability*, of *kind*."""

    stage: Literal[FAULT_STAGES]  # type: ignore[valid-type]
    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    probability: float = Field(ge=0, le=1)
    code: int | None = Field(default=None, ge=400, le=599)
    duration: DelayDist | None = None  # stall: how long; delay: the distribution
    users: float = Field(default=1.0, gt=0, le=1)  # the share of users it is aimed at

    @model_validator(mode="after")
    def _check(self) -> FaultConfig:
        if self.kind in ("stall", "delay") and self.duration is None:
            raise ValueError(f'kind "{self.kind}" needs duration (e.g. "const(5s)")')
        if self.code is not None and self.kind not in ("4xx", "5xx"):
            raise ValueError(f'code is for kinds "4xx" and "5xx", not "{self.kind}"')
        if self.code is not None and str(self.code)[0] != self.kind[0]:
            raise ValueError(f"code {self.code} is not a {self.kind} reply")
        if self.kind == "accept_drop" and self.stage != "dot":
            raise ValueError('kind "accept_drop" (250, then lost) is for stage "dot" only')
        if self.users < 1 and self.stage not in USER_STAGES:
            raise ValueError(
                f"users: a fault at {self.stage} comes before any recipient is known; "
                f"aim at a share of users only at {', '.join(USER_STAGES)}"
            )
        return self


class OutageConfig(_Model):
    """A scheduled outage of the fake MTA, from *at* after the start, lasting *for*."""

    model_config = ConfigDict(populate_by_name=True)
    at: Duration
    duration: Duration = Field(alias="for", gt=0)
    kind: Literal["refuse", "421", "stall", "blackhole"] = "refuse"


class FakeMtaSettings(_Model):
    processing_delay: DelayDist = Field(default_factory=lambda: parse_delay("uniform(5ms, 50ms)"))
    delivery_delay: DelayDist = Field(default_factory=lambda: parse_delay("uniform(5ms, 50ms)"))
    delivery_workers: int = Field(default=8, ge=1, le=1000)
    listen: Address = ("127.0.0.1", 0)
    inbound: Address = ("127.0.0.1", 0)
    hostname: Hostname = "mta.local.test"
    max_rate: float | None = Field(default=None, gt=0)  # messages/s it can process
    queue_limit: int | None = Field(default=None, ge=1)  # 452 when this many are queued
    # What a client may ask of it (Postfix's message_size_limit and smtpd_recipient_limit):
    # advertised as SIZE, 552 past it; 452 past the recipient limit.
    message_size_limit: Size = Field(default=10_240_000, ge=1024, le=1 << 32)
    recipient_limit: int = Field(default=1000, ge=1, le=1_000_000)
    faults: tuple[FaultConfig, ...] = ()
    outages: tuple[OutageConfig, ...] = ()
    filter: FilterConfig | None = None  # off unless the table is given

    @model_validator(mode="after")
    def _check(self) -> FakeMtaSettings:
        total: dict[str, float] = {}
        for f in self.faults:
            if f.kind != "delay":  # one draw per stage picks at most one outcome fault
                total[f.stage] = total.get(f.stage, 0.0) + f.probability
        for stage, p in total.items():
            if p > 1 + 1e-9:
                raise ValueError(
                    f"fakemta.faults: the probabilities of the faults at {stage} add up to "
                    f"{p:g} > 1 (only kind 'delay' may overlap the others)"
                )
        spans = sorted(self.outages, key=lambda o: o.at)
        for a, b in itertools.pairwise(spans):
            if b.at < a.at + a.duration:
                raise ValueError("fakemta.outages: two outages overlap")
        return self


class MailboxConfig(_Model):
    """Where inbound mail becomes visible, and how mailsla watches it."""

    domain: Hostname = "local.test"
    watch: Literal["maildir", "imap"] = "maildir"
    maildir: str | None = None  # kind = "smtp": folder holding one Maildir per user (<dir>/<user>)
    imap: Address | None = None  # kind = "smtp" or an IMAP server over the fake MTA's Maildirs
    imap_password_env: EnvName = "MAILSLA_IMAP_PASSWORD"
    poll_interval: Duration = 0.1  # IMAP: how often each mailbox is polled (the resolution)
    dispose: Literal["keep", "move", "delete"] = "keep"
    # Labelled traffic: the Junk folder watched beside INBOX (Maildir++ ".<junk>/"; over IMAP
    # the folder marked \Junk, else this name or an alias such as "Spam"); "" watches none.
    junk: str = Field(default="Junk", max_length=64, pattern=r"^(?:[A-Za-z0-9][A-Za-z0-9 _-]*)?$")


# Worker processes: a number, or "auto" (resolved when the run starts: see
# bench.run.wiring.resolve_workers).
def _workers(v: object) -> object:
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 64):
        return v
    raise ValueError(f'a number of processes from 1 to 64, or "auto" (got {v!r})')


Workers = Annotated[int | Literal["auto"], BeforeValidator(_workers)]


def procs(workers: Workers) -> int:
    """The process count of a resolved ``workers`` field."""
    if workers == "auto":
        raise ValueError('workers = "auto" is resolved when the run starts, not before')
    return workers


class PostOfficeConfig(_Model):
    listen: Address = ("127.0.0.1", 0)
    domain: Hostname = "remote.test"
    hostname: Hostname = "postoffice.remote.test"
    workers: Workers = "auto"
    defer: float = Field(default=0.0, ge=0, le=1)  # share of messages answered 451 at the dot
    refuse: float = Field(default=0.0, ge=0, le=1)  # share answered 554 (the system bounces)
    # In processes of its own (the default), nothing the post office receives (garbage, a
    # flood) can slow the generator's loop; false: one post office in the run's own loop.
    isolate: bool = True

    @model_validator(mode="after")
    def _check(self) -> PostOfficeConfig:
        if self.defer + self.refuse > 1:
            raise ValueError("postoffice.defer + postoffice.refuse cannot exceed 1")
        return self


MIN_RATE = 0.001  # messages a second: one every 1000 s (a smaller rate is no load, or NaN)
MAX_RATE = 1_000_000.0
MAX_PLANNED = 10**9  # message ids are written as 10 digits: a run plans at most a billion


class Step(_Model):
    rate: float = Field(ge=MIN_RATE, le=MAX_RATE, allow_inf_nan=False)
    duration: Duration


class LoadConfig(_Model):
    model: Literal["constant", "poisson", "closed", "steps"] = "constant"
    rate: float = Field(default=100.0, ge=MIN_RATE, le=MAX_RATE, allow_inf_nan=False)
    duration: Duration = 20.0
    drain: Duration = 30.0
    sessions: int = Field(default=10, ge=1, le=10_000)
    depth: int = Field(default=1, ge=1, le=64)
    client: Literal["pipelined", "aiosmtplib"] = "pipelined"
    workers: Workers = "auto"
    think_time: Duration = 0.0
    steps: tuple[Step, ...] = ()
    timeout: Duration = 30.0
    greeting_timeout: Duration = 5.0  # connecting and the server's greeting
    late_after: Duration = 0.010
    max_messages: int | None = Field(default=None, ge=1, le=MAX_PLANNED)
    direction: Literal["send", "receive", "both"] = "send"
    receive_share: float = Field(default=0.5, gt=0, lt=1)  # with "both": the inbound share
    connection: Literal["persistent", "per_message"] = "persistent"
    messages_per_connection: int = Field(default=0, ge=0)  # 0: no cap

    @field_validator("workers")
    @classmethod
    def _a_session_each(cls, v: int | str, info: ValidationInfo) -> int | str:
        sessions = info.data.get("sessions")
        if isinstance(v, int) and sessions is not None and v > sessions:
            raise ValueError(
                f"{v} generator processes need at least as many sessions (load.sessions is "
                f"{sessions}): each process sends on sessions of its own"
            )
        return v

    @field_validator("client")
    @classmethod
    def _one_at_a_time(cls, v: str, info: ValidationInfo) -> str:
        depth = info.data.get("depth", 1)
        if v == "aiosmtplib" and depth > 1:
            raise ValueError(
                f"aiosmtplib carries one message at a time on a session: load.depth {depth} "
                'needs client = "pipelined"'
            )
        return v

    @property
    def sending_s(self) -> float:
        """How long the sending phase lasts, in seconds: the steps' total for model "steps",
        else ``duration``."""
        return sum(s.duration for s in self.steps) if self.model == "steps" else self.duration

    @property
    def per_connection_cap(self) -> int:
        """Messages a connection takes before it is closed (0: no limit)."""
        return 1 if self.connection == "per_message" else self.messages_per_connection

    @model_validator(mode="after")
    def _check(self) -> LoadConfig:
        if self.model == "steps" and not self.steps:
            raise ValueError('model "steps" needs load.steps = [{rate = ..., duration = ...}]')
        if self.duration <= 0 and self.model != "steps":
            raise ValueError("duration must be > 0")
        if self.timeout <= 0:
            raise ValueError("timeout must be > 0")
        if self.greeting_timeout <= 0:
            raise ValueError("greeting_timeout must be > 0")
        if self.model == "steps":
            planned = sum(s.rate * s.duration for s in self.steps)
        else:
            planned = self.rate * self.duration if self.model != "closed" else 0.0
        if planned > MAX_PLANNED:
            raise ValueError(
                f"rate x duration plans {planned:.3g} messages; a run plans at most "
                f"{MAX_PLANNED:,} (message ids have 10 digits)"
            )
        return self


class MessageConfig(_Model):
    size: Size = Field(default=2048, ge=0, le=50 * 1024 * 1024)  # 50 MiB, as large mail goes
    recipients: int = Field(default=1, ge=1, le=100)
    users: int = Field(default=100, ge=1, le=1_000_000)
    sender: str = Field(default="load@sender.mailsla.test", pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    # Labelled traffic (bench.core.corpus): the shares of ham, spam and virus; None: none.
    mix: ClassMix | None = None
    sizes: Literal["fixed", "real"] = "fixed"  # about ``size``, or real mail's up to it (ham)
    # The GTUBE string spam carries: the standard one (filters reject it), or rspamd's
    # "add header" variant (a filter that tags spam, or files it into Junk).
    gtube: Literal["standard", "add_header"] = "standard"

    @model_validator(mode="after")
    def _check(self) -> MessageConfig:
        if self.recipients > self.users:
            raise ValueError(
                f"recipients ({self.recipients}) cannot exceed users ({self.users}): "
                "a message would name a mailbox twice"
            )
        return self


class ThresholdTable(_Model):
    """A threshold with options, ``{threshold = "...", abort_on_fail = true, grace = "30s"}``:
    with ``abort_on_fail`` the run stops when it fails, checked from ``grace`` after the start."""

    threshold: ThresholdT
    abort_on_fail: bool = False
    grace: Duration = Field(default=0.0, ge=0)


def _threshold_entry(v: Any) -> Threshold:
    """A threshold as a string or a table (:class:`ThresholdTable`)."""
    if isinstance(v, Threshold):
        return v
    if not isinstance(v, Mapping):
        return parse_threshold(v)
    try:
        table = ThresholdTable.model_validate(v)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ValueError(f"{_where(tuple(err['loc']))}: {_why(err)}") from None
    return dataclasses.replace(
        table.threshold, abort_on_fail=table.abort_on_fail, grace_s=table.grace
    )


def _threshold_doc(t: Threshold) -> str | dict[str, Any]:
    if not (t.abort_on_fail or t.grace_s):
        return t.text
    grace = format_duration(t.grace_s)
    return {"threshold": t.text, "abort_on_fail": t.abort_on_fail, "grace": grace}


ThresholdEntry = Annotated[
    Threshold, BeforeValidator(_threshold_entry), PlainSerializer(_threshold_doc)
]


class SlaConfig(_Model):
    profile: Literal[PROFILES] = "exmail"  # type: ignore[valid-type]
    thresholds: tuple[ThresholdEntry, ...] = ()
    availability_window: Duration = Field(default=60.0, ge=1.0, le=86400.0)  # 1 s to 1 day


class ResultsConfig(_Model):
    """What a run writes beside result.json: every ``interval``, each latency metric's
    histogram to ``metrics.hlog`` (``hlog``) and the counts and percentiles to
    ``timeseries.csv`` (``csv``)."""

    interval: Duration = 1.0
    hlog: bool = True
    csv: bool = True

    @field_validator("interval")
    @classmethod
    def _whole_seconds(cls, v: float) -> float:
        if v < 1 or v != int(v):
            raise ValueError(
                f"{format_duration(v)} is not a whole number of seconds "
                "(the run's clock ticks once a second)"
            )
        return v


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in str(part) or "function-" in str(part):
            continue  # pydantic's internal validator names
        else:
            out += ("." if out else "") + str(part)
    return out


# Pydantic's words for a value of the wrong shape ("Input should be a valid tuple"), in TOML's.
_SHAPES = {
    "tuple_type": "an array, [...] in TOML",
    "list_type": "an array, [...] in TOML",
    "model_type": "a table, {...} in TOML",
    "dict_type": "a table, {...} in TOML",
    "model_attributes_type": "a table, {...} in TOML",
}


def _why(err: Any) -> str:
    kind, msg = err["type"], str(err["msg"])
    if kind == "extra_forbidden":
        return "unknown field"
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    elif msg.startswith("Assertion failed, "):
        msg = msg[len("Assertion failed, ") :]
    if kind in ("value_error", "assertion_error", "missing"):
        return msg
    if kind in _SHAPES:
        return f"must be {_SHAPES[kind]} (got {err.get('input')!r})"
    ctx = err.get("ctx") or {}
    for key, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in ctx:
            return f"must be {word} {ctx[key]} (got {err.get('input')!r})"
    return f"{msg} (got {err.get('input')!r})"
