"""Scenario files: TOML validated into frozen values, with ``--set`` overrides. Pure but for
:func:`load`, which reads the file.

Errors are :class:`ScenarioError` naming the file, the dotted field path and why.
"""

from __future__ import annotations

import ipaddress
import itertools
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from bench.fields import Address, DelayDist, Duration, Hostname, Size, ThresholdT
from bench.sla import PROFILES
from fakemta.delays import parse_delay
from fakemta.faults import KINDS as FAULT_KINDS
from fakemta.faults import STAGES as FAULT_STAGES
from fakemta.faults import USER_STAGES


class ScenarioError(Exception):
    """A scenario that cannot be used: file, field path and reason."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.lines()[0])

    def lines(self) -> list[str]:
        return [
            f"{self.source}: {f}: {why}" if f else f"{self.source}: {why}"
            for f, why in self.problems
        ]


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
    faults: tuple[FaultConfig, ...] = ()
    outages: tuple[OutageConfig, ...] = ()

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


class PostOfficeConfig(_Model):
    listen: Address = ("127.0.0.1", 0)
    domain: Hostname = "remote.test"
    hostname: Hostname = "postoffice.remote.test"
    workers: int = Field(default=1, ge=1, le=64)
    defer: float = Field(default=0.0, ge=0, le=1)  # share of messages answered 451 at the dot
    refuse: float = Field(default=0.0, ge=0, le=1)  # share answered 554 (the system bounces)

    @model_validator(mode="after")
    def _check(self) -> PostOfficeConfig:
        if self.defer + self.refuse > 1:
            raise ValueError("postoffice.defer + postoffice.refuse cannot exceed 1")
        return self


class Step(_Model):
    rate: float = Field(gt=0, le=1_000_000)
    duration: Duration


class LoadConfig(_Model):
    model: Literal["constant", "poisson", "closed", "steps"] = "constant"
    rate: float = Field(default=100.0, gt=0, le=1_000_000)
    duration: Duration = 20.0
    drain: Duration = 30.0
    sessions: int = Field(default=10, ge=1, le=10_000)
    depth: int = Field(default=1, ge=1, le=64)
    client: Literal["pipelined", "aiosmtplib"] = "pipelined"
    workers: int = Field(default=1, ge=1, le=64)
    think_time: Duration = 0.0
    steps: tuple[Step, ...] = ()
    timeout: Duration = 30.0
    late_after: Duration = 0.010
    max_messages: int | None = Field(default=None, ge=1)
    direction: Literal["send", "receive", "both"] = "send"
    receive_share: float = Field(default=0.5, gt=0, lt=1)  # with "both": the inbound share
    connection: Literal["persistent", "per_message"] = "persistent"
    messages_per_connection: int = Field(default=0, ge=0)  # 0: no cap

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
        return self


class MessageConfig(_Model):
    size: Size = 2048
    recipients: int = Field(default=1, ge=1, le=100)
    users: int = Field(default=100, ge=1, le=10_000_000)
    sender: str = Field(default="load@sender.mailsla.test", pattern=r"^[^@\s<>]+@[^@\s<>]+$")

    @model_validator(mode="after")
    def _check(self) -> MessageConfig:
        if self.recipients > self.users:
            raise ValueError(
                f"recipients ({self.recipients}) cannot exceed users ({self.users}): "
                "a message would name a mailbox twice"
            )
        return self


class SlaConfig(_Model):
    profile: Literal[PROFILES] = "exmail"  # type: ignore[valid-type]
    thresholds: tuple[ThresholdT, ...] = ()
    availability_window: Duration = Field(default=60.0, gt=0)  # fault windows are this long


class Scenario(_Model):
    """A validated, frozen scenario."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    seed: int = 1
    allow_remote: bool = False
    system: SystemConfig = SystemConfig()
    fakemta: FakeMtaSettings = FakeMtaSettings()
    postoffice: PostOfficeConfig = PostOfficeConfig()
    mailbox: MailboxConfig = MailboxConfig()
    load: LoadConfig = LoadConfig()
    message: MessageConfig = MessageConfig()
    sla: SlaConfig = SlaConfig()

    @property
    def directions(self) -> tuple[str, ...]:
        """The lanes of traffic: ("send",), ("receive",) or both."""
        d = self.load.direction
        return ("send", "receive") if d == "both" else (d,)

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        receiving = "receive" in self.directions
        if receiving:
            mb = self.mailbox
            if self.load.workers > 1:
                raise ValueError(
                    'load.workers: inbound traffic (load.direction = "receive" or "both") runs '
                    "in one generator process; set load.workers = 1"
                )
            if self.system.kind == "smtp":
                if mb.watch == "imap" and mb.imap is None:
                    raise ValueError('mailbox.imap: required when mailbox.watch = "imap"')
                if self.system.inbound is None:
                    raise ValueError(
                        "system.inbound: required for inbound traffic to a real system "
                        "(where other post offices deliver)"
                    )
                if mb.watch == "maildir" and mb.maildir is None:
                    raise ValueError(
                        "mailbox.maildir: required to watch a real system's Maildirs "
                        "(the folder holding <user>/new/)"
                    )
            if mb.domain.lower() == self.postoffice.domain.lower():
                raise ValueError("mailbox.domain: must differ from postoffice.domain")
        if self.system.kind == "smtp" and "send" in self.directions:
            if self.system.submit is None:
                raise ValueError('system.submit: required when system.kind = "smtp"')
            if self.postoffice.listen[1] == 0:
                raise ValueError(
                    'postoffice.listen: with system.kind = "smtp" the post office needs a '
                    "fixed port, the one that system relays postoffice.domain mail to"
                )
        if not self.allow_remote:
            for name, addr in (
                ("system.submit", self.system.submit),
                ("system.inbound", self.system.inbound),
                ("postoffice.listen", self.postoffice.listen),
                ("fakemta.listen", self.fakemta.listen),
                ("fakemta.inbound", self.fakemta.inbound),
                ("mailbox.imap", self.mailbox.imap),
            ):
                if addr is not None and not _is_loopback(addr[0]):
                    raise ValueError(
                        f"{name}: {addr[0]} is not a loopback address; "
                        "set allow_remote = true to use a remote system"
                    )
        return self

    def credentials(self, environ: Mapping[str, str]) -> tuple[str, str] | None:
        """The AUTH user and password from *environ*, or None when AUTH is off; raises
        :class:`ValueError` naming the field whose variable is unset."""
        auth = self.system.auth
        if auth is None:
            return None
        found = []
        for field_name, var in (("user_env", auth.user_env), ("password_env", auth.password_env)):
            value = environ.get(var)
            if not value:
                raise ValueError(
                    f"system.auth.{field_name}: environment variable {var} is not set "
                    "(AUTH credentials are read from the environment)"
                )
            found.append(value)
        return found[0], found[1]

    def imap_password(self, environ: Mapping[str, str]) -> str | None:
        """The IMAP watcher's password when it logs in to a server the scenario names (a
        throwaway Dovecot started by mailsla needs none); raises :class:`ValueError`."""
        mb = self.mailbox
        if "receive" not in self.directions or mb.watch != "imap" or mb.imap is None:
            return None
        value = environ.get(mb.imap_password_env)
        if not value:
            raise ValueError(
                f"mailbox.imap_password_env: environment variable {mb.imap_password_env} "
                "is not set (the IMAP password is read from the environment)"
            )
        return value

    def as_run(self) -> dict[str, Any]:
        """The scenario as run, in the file's own notation (JSON-friendly)."""
        return self.model_dump(mode="json")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    ctx = err.get("ctx") or {}
    for key, word in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
        if key in ctx:
            return f"must be {word} {ctx[key]} (got {err.get('input')!r})"
    return f"{msg} (got {err.get('input')!r})"


def from_dict(data: dict[str, Any], source: str) -> Scenario:
    """Validate a parsed TOML document; raises :class:`ScenarioError`."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems: list[tuple[str, str]] = []
        for err in exc.errors():
            where, why = _where(tuple(err["loc"])), _why(err)
            # Model-level checks name their field in the message ("system.submit: ...").
            head, sep, rest = why.partition(": ")
            if not where and sep and "." in head and " " not in head:
                where, why = head, rest
            problems.append((where, why))
        raise ScenarioError(source, problems) from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"load.rate=500"`` -> (["load", "rate"], 500); VALUE is TOML, else a plain string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not p for p in key.split(".")):
        raise ScenarioError("--set", [("", f"{text!r}: expected KEY=VALUE, e.g. load.rate=500")])
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of *data* with each ``KEY=VALUE`` set at its dotted path."""
    out: dict[str, Any] = _copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(path[: i + 1])
                raise ScenarioError("--set", [(where, f"{text!r}: {where} is not a table")])
            node = child
        node[path[-1]] = value
    return out


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in d.items()}


def load(path: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Read, override and validate a scenario file."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(str(p), [("", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ScenarioError(str(p), [("", "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(p), [("", f"not valid TOML: {exc}")]) from None
    source = str(p)
    if overrides:
        data = apply_overrides(data, overrides)
        source += " (with --set " + " --set ".join(overrides) + ")"
    return from_dict(data, source)
