"""Availability from traffic: fault windows, the no-fault and connectivity rates. Pure.

The SLA (``../shared/sla-source.md``) promises a no-fault rate of at least 99.9 % of a 30-day
month, a fault being more than 10 % of users unable to use mail, and network connectivity of at
least 99.9 %. Time is cut into windows (one minute by default) by each message's *planned* send
time. A user is active in a window when a message for them was planned in it, and affected when
one of those messages was rejected or failed. A window is a **fault** when more than 10 % of
its active users were affected, and a **connectivity fault** when more than 10 % were affected
by connection-level failures alone (refused, reset, timeout, greeting never came…), as opposed
to SMTP replies. Per-second counts locate the outages: runs of seconds in which most attempts
failed (random faults at a few per cent do not make an outage; a refusing or stalled system
does).

Only windows and seconds that saw traffic are kept; a user set lives as long as its window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

NS = 1_000_000_000
FAULT_SHARE = 0.10  # more than this share of active users affected: a fault
OUTAGE_SHARE = 0.5  # more than this share of a second's attempts failed: part of an outage
MONTH_MIN = 30 * 24 * 60  # minutes in the SLA's 30-day month
SLA_RATE = 0.999
BUDGET_MIN = MONTH_MIN * (1 - SLA_RATE)  # 43.2 minutes a month

OK, REPLY, CONNECTION = "ok", "reply", "connection"


@dataclass(slots=True)
class Window:
    active: set[int] = field(default_factory=set)
    affected: set[int] = field(default_factory=set)
    disconnected: set[int] = field(default_factory=set)  # affected by connection failures

    def merge(self, other: Window) -> None:
        self.active |= other.active
        self.affected |= other.affected
        self.disconnected |= other.disconnected


class Availability:
    """Records each message's fate by planned time; mergeable across worker processes."""

    def __init__(self, start_ns: int, window_s: float = 60.0) -> None:
        self.start_ns = start_ns
        self.window_ns = round(window_s * NS)
        self.windows: dict[int, Window] = {}
        self.seconds: dict[int, list[int]] = {}  # second -> [attempts, reply fails, conn fails]

    def record(self, planned_ns: int, users: Iterable[int], kind: str) -> None:
        """One message planned at *planned_ns* for *users* ended ``ok``, failed with an SMTP
        ``reply`` or at the ``connection`` level."""
        rel = planned_ns - self.start_ns
        w = self.windows.get(rel // self.window_ns)
        if w is None:
            w = self.windows[rel // self.window_ns] = Window()
        sec = self.seconds.get(rel // NS)
        if sec is None:
            sec = self.seconds[rel // NS] = [0, 0, 0]
        sec[0] += 1
        if kind == OK:
            w.active.update(users)
            return
        us = list(users)
        w.active.update(us)
        w.affected.update(us)
        if kind == CONNECTION:
            w.disconnected.update(us)
            sec[2] += 1
        else:
            sec[1] += 1

    def merge(self, other: Availability) -> None:
        """Add *other*'s records (same start and window)."""
        for k, w in other.windows.items():
            self.windows.setdefault(k, Window()).merge(w)
        for s, counts in other.seconds.items():
            mine = self.seconds.setdefault(s, [0, 0, 0])
            for i, n in enumerate(counts):
                mine[i] += n

    def summary(self, lost: int = 0) -> dict[str, Any]:
        """The result's ``availability`` section. *lost*: accepted mail never delivered."""
        rows = []
        for k in sorted(self.windows):
            w = self.windows[k]
            n = len(w.active)
            rows.append(
                {
                    "start_s": k * self.window_ns / NS,
                    "active_users": n,
                    "affected_users": len(w.affected),
                    "disconnected_users": len(w.disconnected),
                    "fault": n > 0 and len(w.affected) > FAULT_SHARE * n,
                    "connectivity_fault": n > 0 and len(w.disconnected) > FAULT_SHARE * n,
                }
            )
        total = len(rows)
        faults = sum(r["fault"] for r in rows)
        conn = sum(r["connectivity_fault"] for r in rows)
        no_fault = 1 - faults / total if total else None
        connectivity = 1 - conn / total if total else None
        return {
            "window_s": self.window_ns / NS,
            "windows": total,
            "fault_windows": faults,
            "connectivity_fault_windows": conn,
            "no_fault_rate": no_fault,
            "connectivity_rate": connectivity,
            "month": _month(no_fault, connectivity),
            "outages": self.outages(),
            "accepted_then_lost": lost,
            "by_window": rows,
        }

    def outages(self) -> list[dict[str, Any]]:
        """Runs of seconds in which most attempts failed: when each began and ended (seconds
        from the start), and whether connection failures dominated."""
        out: list[dict[str, Any]] = []
        cur: dict[str, Any] | None = None
        for s in sorted(self.seconds):
            attempts, replies, conns = self.seconds[s]
            bad = replies + conns > OUTAGE_SHARE * attempts
            if bad and cur is not None and s == cur["end_s"]:
                cur["end_s"] = s + 1
                cur["attempts"] += attempts
                cur["failed"] += replies + conns
                cur["connection_failed"] += conns
            elif bad:
                cur = {
                    "begin_s": float(s),
                    "end_s": s + 1,
                    "attempts": attempts,
                    "failed": replies + conns,
                    "connection_failed": conns,
                }
                out.append(cur)
            else:
                cur = None
        for o in out:
            o["end_s"] = float(o["end_s"])
            o["kind"] = "connection" if o["connection_failed"] * 2 > o["failed"] else "reply"
        return out


def _month(no_fault: float | None, connectivity: float | None) -> dict[str, Any]:
    """Both rates projected to the SLA's 30-day month: minutes and share of the budget."""
    out: dict[str, Any] = {"budget_min": BUDGET_MIN}
    for key, rate in (("fault", no_fault), ("disconnected", connectivity)):
        minutes = None if rate is None else (1 - rate) * MONTH_MIN
        out[f"{key}_min"] = minutes
        out[f"{key}_budget_share"] = None if minutes is None else minutes / BUDGET_MIN
    return out


def failure_kind(outcome_kind: str, stage: str = "", code: int = 0, labelled: bool = False) -> str:
    """``ok``, ``reply`` (the system answered with an SMTP error) or ``connection`` (it could
    not be reached or talked to: refused, reset, timeout, no greeting, TLS failure).

    With labelled traffic (``message.mix``) a permanent reply to the end of DATA is the
    filter's verdict on the message, not a fault of the service: it is judged by the filtering
    clauses (a ham rejected there is a false positive), so it counts as ``ok`` here."""
    if outcome_kind == "accepted":
        return OK
    if labelled and outcome_kind == "rejected" and stage == "dot" and 500 <= code < 600:
        return OK
    if outcome_kind == "rejected":
        return REPLY
    return CONNECTION
