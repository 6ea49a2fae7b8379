"""Whether two runs can be compared: the scenario's fingerprint, and what differs. Pure.

Two runs are comparable when they offered the same load to the same kind of system. The
fingerprint is read from ``run.scenario`` of each result (the resolved scenario): a key a result
does not record (written by hand, or older than the key) counts as its default.

What is in it, and why:

- ``system.kind``, ``system.tls``, ``system.auth.mechanism``: what kind of system, and what each
  connection costs (a handshake, an AUTH exchange);
- with ``system.kind = "fakemta"``: ``fakemta.processing_delay``, ``delivery_workers``,
  ``max_rate``, ``queue_limit``, ``faults`` and ``outages`` (and ``delivery_delay`` when the run
  receives mail): the stand-in system *is* its settings;
- ``postoffice.defer`` and ``postoffice.refuse``: refusals the relay has to retry or bounce;
- ``load.model``, ``load.rate`` (constant and poisson), ``load.duration`` (or ``load.steps``),
  ``load.think_time`` (closed), ``load.sessions``, ``load.depth``, ``load.max_messages``,
  ``load.direction``, ``load.receive_share`` (both directions), ``load.connection`` and
  ``load.messages_per_connection``: the offered load;
- ``message.size``, ``message.recipients``, ``message.users``: the message mix;
- ``mailbox.watch`` (and ``mailbox.poll_interval`` over IMAP) when the run receives mail: the
  resolution of ``receive_delay``;
- ``sla.availability_window``: the length of the windows the availability rates count.

Left out on purpose: names, the seed (another sample of the same scenario), addresses and ports
(comparing two systems under the same load is what ``compare`` is for; ports are random),
thresholds and the profile (they judge a run, they do not change what it measures), the drain and
timeouts, and how mailsla itself is spread over processes and clients (``load.workers``,
``load.client``, ``postoffice.workers``).

Counts differ with the length of a run, so ``compare`` takes them per second of the sending phase
(:func:`sending_seconds`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from bench.config.delays import parse_delay
from bench.config.names import CONNECTION_STAGES
from bench.config.scenario import from_dict
from bench.config.units import parse_duration, parse_size
from bench.errors import UsageError

Scenario = Mapping[str, Any]


class NotComparableError(UsageError):
    """Two runs of scenarios that differ: names both files and every difference (exit 2)."""


@cache
def _defaults() -> dict[str, Any]:
    return from_dict({"name": "defaults"}, "defaults").as_run()


def _lookup(tree: object, parts: Sequence[str]) -> tuple[bool, Any]:
    """(found, value) at *parts*; a parent that is null gives (True, None)."""
    node = tree
    for part in parts:
        if node is None:
            return True, None
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def scenario_of(doc: Mapping[str, Any]) -> Scenario:
    """The resolved scenario a result records (an empty one when it records none)."""
    run = doc.get("run")
    sc = run.get("scenario") if isinstance(run, Mapping) else None
    return sc if isinstance(sc, Mapping) else {}


def value(sc: Scenario, path: str) -> Any:
    """The value at the dotted *path* of a scenario as run, or the default when not recorded."""
    parts = path.split(".")
    found, v = _lookup(sc, parts)
    return v if found else _lookup(_defaults(), parts)[1]


def _fakemta(sc: Scenario) -> bool:
    return bool(value(sc, "system.kind") == "fakemta")


def _receives(sc: Scenario) -> bool:
    return bool(value(sc, "load.direction") != "send")


@dataclass(frozen=True, slots=True)
class Key:
    """A key of the fingerprint, compared when *when* holds for both runs."""

    path: str
    when: Callable[[Scenario], bool] = lambda sc: True


def _is(path: str, *values: object) -> Callable[[Scenario], bool]:
    return lambda sc: value(sc, path) in values


FINGERPRINT: tuple[Key, ...] = (
    Key("system.kind"),
    Key("system.tls"),
    Key("system.auth.mechanism"),
    Key("fakemta.processing_delay", _fakemta),
    Key("fakemta.delivery_delay", lambda sc: _fakemta(sc) and _receives(sc)),
    Key("fakemta.delivery_workers", _fakemta),
    Key("fakemta.max_rate", _fakemta),
    Key("fakemta.queue_limit", _fakemta),
    Key("fakemta.faults", _fakemta),
    Key("fakemta.outages", _fakemta),
    Key("postoffice.defer"),
    Key("postoffice.refuse"),
    Key("load.model"),
    Key("load.rate", _is("load.model", "constant", "poisson")),
    Key("load.duration", lambda sc: value(sc, "load.model") != "steps"),
    Key("load.steps", _is("load.model", "steps")),
    Key("load.think_time", _is("load.model", "closed")),
    Key("load.sessions"),
    Key("load.depth"),
    Key("load.max_messages"),
    Key("load.direction"),
    Key("load.receive_share", _is("load.direction", "both")),
    Key("load.connection"),
    Key("load.messages_per_connection", _is("load.connection", "persistent")),
    Key("message.size"),
    Key("message.recipients"),
    Key("message.users"),
    Key("mailbox.watch", _receives),
    Key("mailbox.poll_interval", lambda sc: _receives(sc) and value(sc, "mailbox.watch") == "imap"),
    Key("sla.availability_window"),
)


def _norm(v: Any) -> Any:
    """A value as compared: "20s" and "20000ms" alike, 200 and 200.0 alike."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        for parse in (parse_duration, parse_size):
            try:
                return (parse.__name__, float(parse(v)))
            except ValueError:
                pass
        try:
            d = parse_delay(v)
        except ValueError:
            return v.strip()
        return ("delay", d.kind, d.a, d.b)
    if isinstance(v, Mapping):
        return tuple(sorted(((str(k), _norm(x)) for k, x in v.items()), key=lambda kv: kv[0]))
    if isinstance(v, list | tuple):
        return tuple(_norm(x) for x in v)
    return v


def show(v: Any) -> str:
    """A value as the user wrote it: ``20s``, ``200``, ``none``, ``[{...}]``."""
    if v is None or v == []:
        return "none"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, list | dict):
        return json.dumps(v, separators=(", ", "="), ensure_ascii=False).replace('"', "")
    return str(v)


@dataclass(frozen=True, slots=True)
class Difference:
    """A fingerprint key on which the two runs differ."""

    key: str
    baseline: Any
    current: Any

    @property
    def text(self) -> str:
        return f"{self.key}: baseline {show(self.baseline)}, current {show(self.current)}"

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "baseline": self.baseline, "current": self.current}


def fingerprint(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of the fingerprint that apply to a run, and their values."""
    sc = scenario_of(doc)
    return {k.path: value(sc, k.path) for k in FINGERPRINT if k.when(sc)}


def differences(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[Difference]:
    """Every key of the fingerprint, applying to both runs, on which they differ."""
    b, c = scenario_of(baseline), scenario_of(current)
    out = []
    for key in FINGERPRINT:
        if key.when(b) and key.when(c):
            bv, cv = value(b, key.path), value(c, key.path)
            if _norm(bv) != _norm(cv):
                out.append(Difference(key.path, bv, cv))
    return out


def refusal(
    baseline: object, current: object, diffs: Sequence[Difference], hint: str = ""
) -> NotComparableError:
    """The error that refuses to compare *baseline* with *current* (labels: their files)."""
    n = len(diffs)
    head = (
        f"{baseline} and {current} are not comparable: their scenarios differ in "
        f"{n} key{'s' if n != 1 else ''}"
    )
    return NotComparableError(head, *(d.text for d in diffs), *([hint] if hint else []))


def _seconds(v: object) -> float | None:
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    try:
        return parse_duration(v) if isinstance(v, str) else None
    except ValueError:
        return None


def _span(run: Mapping[str, Any]) -> float | None:
    try:
        start = datetime.fromisoformat(run["started_at"])
        end = datetime.fromisoformat(run["ended_at"])
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def sending_seconds(doc: Mapping[str, Any]) -> float | None:
    """How long the run's sending phase lasted, in seconds (None when it cannot be told).

    ``run.sending_s`` when the result records it; else the schedule's length (the steps'
    durations, or ``load.duration``; ``max_messages ÷ rate`` when that ends it sooner), and for a
    run that did not complete, at most the time from its start to its end.
    """
    run = doc.get("run")
    run = run if isinstance(run, Mapping) else {}
    recorded = _seconds(run.get("sending_s"))
    if recorded is not None and recorded > 0:
        return recorded
    sc = scenario_of(doc)
    model = value(sc, "load.model")
    if model == "steps":
        steps = value(sc, "load.steps") or []
        parts = [_seconds(s.get("duration")) if isinstance(s, Mapping) else None for s in steps]
        t = sum(p for p in parts if p is not None) if None not in parts else None
    else:
        t = _seconds(value(sc, "load.duration"))
        rate, cap = value(sc, "load.rate"), value(sc, "load.max_messages")
        if t is not None and model != "closed" and isinstance(cap, int) and rate:
            t = min(t, cap / float(rate))
    if t is not None and run.get("status", "completed") != "completed":
        span = _span(run)
        t = min(t, span) if span is not None else t
    return t if t is not None and t > 0 else None


def reopens_connections(doc: Mapping[str, Any]) -> bool:
    """Whether the run opens connections as it goes (per message, or after a number of
    messages) rather than keeping ``load.sessions`` of them open."""
    sc = scenario_of(doc)
    return bool(
        value(sc, "load.connection") != "persistent" or value(sc, "load.messages_per_connection")
    )


def per_connection(metric: str) -> bool:
    """Whether *metric* is timed once per connection (its count follows the sessions)."""
    return metric.removeprefix("inbound.") in {f"stage.{s}" for s in CONNECTION_STAGES}


def per_second(
    metric: str, baseline: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[float, float] | None:
    """The two sending phases (seconds) when *metric*'s counts are compared per second; None
    when they are compared as counts: a duration is unknown, or the metric is timed per
    connection and neither run reopens connections."""
    if per_connection(metric) and not (
        reopens_connections(baseline) or reopens_connections(current)
    ):
        return None
    tb, tc = sending_seconds(baseline), sending_seconds(current)
    return None if tb is None or tc is None else (tb, tc)
