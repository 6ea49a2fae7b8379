"""Scenario files: TOML validated into frozen values, with ``--set`` overrides. Pure but for
:func:`load`, which reads the file.

Errors are :class:`ScenarioError` naming the file, the dotted field path and why.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from bench.config.capacity import CapacityConfig, PopulationConfig
from bench.config.monitor import MonitorConfig
from bench.config.names import Direction
from bench.config.sections import (  # the section models, re-exported for callers
    AuthConfig,
    EnvName,
    FakeMtaSettings,
    FaultConfig,
    LoadConfig,
    MailboxConfig,
    MessageConfig,
    OutageConfig,
    PostOfficeConfig,
    ResultsConfig,
    SlaConfig,
    Step,
    SystemConfig,
    ThresholdEntry,
    ThresholdTable,
    _Model,
    _where,
    _why,
    procs,
)
from bench.config.units import format_duration
from bench.errors import UsageError

__all__ = [
    "PARENT_METRICS",
    "AuthConfig",
    "EnvName",
    "FakeMtaSettings",
    "FaultConfig",
    "LoadConfig",
    "MailboxConfig",
    "MessageConfig",
    "MonitorConfig",
    "OutageConfig",
    "PostOfficeConfig",
    "ResultsConfig",
    "Scenario",
    "ScenarioError",
    "SlaConfig",
    "Step",
    "SystemConfig",
    "ThresholdEntry",
    "ThresholdTable",
    "_Model",
    "apply_overrides",
    "from_dict",
    "load",
    "parse_override",
    "procs",
]

# The receive lane watches a mailbox per user: at most this many.
MAX_MAILBOXES = 100_000

# Metrics the runner records itself, per interval, even with generator worker processes.
PARENT_METRICS = ("send_delay", "delivery_delay", "receive_delay")


class ScenarioError(UsageError):
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
    results: ResultsConfig = ResultsConfig()
    monitor: MonitorConfig = MonitorConfig()
    capacity: CapacityConfig = CapacityConfig()
    population: PopulationConfig = PopulationConfig()

    @property
    def directions(self) -> tuple[Direction, ...]:
        """The lanes of traffic: ("send",), ("receive",) or both."""
        d = self.load.direction
        if d == "both":
            return ("send", "receive")
        return ("receive",) if d == "receive" else ("send",)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Scenario:
        # "monitor": mailsla monitor probes the users' own mailboxes, never a post office.
        purpose = (info.context or {}).get("purpose", "run")
        receiving = "receive" in self.directions
        if receiving:
            mb = self.mailbox
            if isinstance(self.load.workers, int) and self.load.workers > 1:
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
            if self.message.users > MAX_MAILBOXES:
                raise ValueError(
                    f"message.users: {self.message.users:,} mailboxes to watch; a run that "
                    f"receives watches at most {MAX_MAILBOXES:,} (a Maildir, or an IMAP "
                    "session's worth of state, each)"
                )
        if self.system.kind == "smtp" and "send" in self.directions:
            if self.system.submit is None:
                raise ValueError('system.submit: required when system.kind = "smtp"')
            if self.postoffice.listen[1] == 0 and purpose != "monitor":
                raise ValueError(
                    'postoffice.listen: with system.kind = "smtp" the post office needs a '
                    "fixed port, the one that system relays postoffice.domain mail to"
                )
        self._check_thresholds()
        if self.system.kind == "fakemta":
            self._check_outages()
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

    def _check_thresholds(self) -> None:
        interval = self.results.interval
        for i, t in enumerate(self.sla.thresholds):
            where = f"sla.thresholds[{i}]: {t.text!r}"
            if t.window_s is not None:
                n = t.window_s / interval
                if abs(n - round(n)) > 1e-9 or round(n) < 1:
                    raise ValueError(
                        f"{where}: the window must be a whole number of results.interval "
                        f"({format_duration(interval)})"
                    )
            many = isinstance(self.load.workers, int) and self.load.workers > 1
            if t.live and many and t.metric not in PARENT_METRICS:
                raise ValueError(
                    f"{where}: with load.workers > 1 the generator's metrics reach the runner "
                    f"only at the end; a window or abort_on_fail needs one of "
                    f"{', '.join(PARENT_METRICS)} (or load.workers = 1)"
                )

    def _check_outages(self) -> None:
        """An outage of the fake MTA must begin while mail is sent: one that begins at or
        after the end of sending never meets a message, and the run would judge a system
        that never went down. (One that begins inside and runs on into the drain is
        legitimate: ``mailsla validate`` warns about it.)"""
        end = self.load.sending_s
        basis = (
            f"the load.steps add up to {format_duration(end)}"
            if self.load.model == "steps"
            else f"load.duration is {format_duration(end)}"
        )
        for i, o in enumerate(self.fakemta.outages):
            if o.at >= end:
                raise ValueError(
                    f"fakemta.outages[{i}].at: {format_duration(o.at)} is not before the end "
                    f"of sending ({basis}): the outage would never happen while mail is sent; "
                    "start it earlier or send for longer"
                )

    def credentials(self, environ: Mapping[str, str]) -> tuple[str, str] | None:
        """The AUTH user and password from *environ*, or None when AUTH is off; raises
        :class:`UsageError` naming the field whose variable is unset."""
        auth = self.system.auth
        if auth is None:
            return None
        found = []
        for field_name, var in (("user_env", auth.user_env), ("password_env", auth.password_env)):
            value = environ.get(var)
            if not value:
                raise UsageError(
                    f"system.auth.{field_name}: environment variable {var} is not set "
                    "(AUTH credentials are read from the environment)"
                )
            found.append(value)
        return found[0], found[1]

    def imap_password(self, environ: Mapping[str, str]) -> str | None:
        """The IMAP watcher's password when it logs in to a server the scenario names (a
        throwaway Dovecot started by mailsla needs none); raises :class:`UsageError`."""
        mb = self.mailbox
        if "receive" not in self.directions or mb.watch != "imap" or mb.imap is None:
            return None
        value = environ.get(mb.imap_password_env)
        if not value:
            raise UsageError(
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


def from_dict(data: dict[str, Any], source: str, purpose: str = "run") -> Scenario:
    """Validate a parsed TOML document for *purpose* ("run", or "monitor": no post office);
    raises :class:`ScenarioError`."""
    try:
        return Scenario.model_validate(data, context={"purpose": purpose})
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
    except RecursionError:
        raise ScenarioError("--set", [(key, "the value is nested too deeply")]) from None
    except tomllib.TOMLDecodeError as exc:
        value = raw.strip()
        if value[:1] in _TOML_OPENERS:  # meant as TOML (an array, a table, a quoted string)
            why = f"{value!r} is not valid TOML: {_toml_why(exc)}"
            if value[:1] in "[{":
                why += (
                    "; strings inside need their quotes, which the shell removes unless the "
                    f"whole --set is in single quotes: --set '{key}=...'"
                )
            raise ScenarioError("--set", [(key, why)]) from None
    return key.split("."), value


# A --set VALUE starting with one of these is TOML, never a plain string.
_TOML_OPENERS = ("[", "{", '"', "'")
_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_PREFIX = len("v = ")


def _toml_why(exc: tomllib.TOMLDecodeError) -> str:
    """tomllib's message, its position counted in the user's VALUE (not in ``v = VALUE``)."""
    text = str(exc)
    m = _TOML_AT.search(text)
    if m is None:
        return text
    line, col = int(m[1]), int(m[2])
    if line == 1:
        col = max(col - _TOML_PREFIX, 1)
    at = f"at character {col}" if line == 1 else f"at line {line}, column {col}"
    return f"{text[: m.start()]} ({at})"


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


def load(path: str | Path, overrides: list[str] | None = None, purpose: str = "run") -> Scenario:
    """Read, override and validate a scenario file (for *purpose*: see :func:`from_dict`)."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(str(p), [("", f"cannot read: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise ScenarioError(str(p), [("", "not UTF-8 text")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(str(p), [("", f"not valid TOML: {exc}")]) from None
    except RecursionError:
        raise ScenarioError(str(p), [("", "not a scenario: nested too deeply")]) from None
    source = str(p)
    if overrides:
        source += " (with --set " + " --set ".join(overrides) + ")"
        try:
            data = apply_overrides(data, overrides)
        except ScenarioError as exc:  # name the file, as a bad value of an override does
            raise ScenarioError(source, exc.problems) from None
    return from_dict(data, source, purpose)
