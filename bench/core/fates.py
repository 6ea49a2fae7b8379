"""What became of each labelled message, by class: the fate books. Pure.

A message sent ends in exactly one fate. At SMTP: ``rejected`` (a 5xx: a filter's verdict, the
way VBSpam counts it), ``deferred`` (a 4xx: no verdict) or ``failed`` (the connection broke: no
verdict). Accepted: delivered in some form — ``delivered_clean``, ``delivered_tagged`` (a spam or
virus header, a subject tag, a Junk folder), ``attachment_removed`` or ``attachment_replaced`` —
or ``not_delivered`` by the end of the drain (quarantined, or dropped), or ``in_flight_at_stop``
when the run was stopped first. What arrived is read by :mod:`bench.observe.fate_reader` into
*marks* (the bits below); the class comes from the books' draw
(:class:`bench.core.corpus.ClassDraw`), never from the message.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from bench.core.metrics import Metric

# What the reader saw in a delivered copy (bits of a small int).
TAGGED = 1  # a spam or virus verdict header, a subject tag, or a Junk folder
EICAR = 2  # the EICAR file is still in it
ATTACHMENT = 4  # it has an attachment part

DELIVERED = ("delivered_clean", "delivered_tagged", "attachment_removed", "attachment_replaced")
FATES = (*DELIVERED, "rejected", "deferred", "failed", "not_delivered", "in_flight_at_stop")
NO_VERDICT = ("deferred", "failed", "in_flight_at_stop")  # not counted in a rate


def fate_of(cls: str, marks: int) -> str:
    """The fate of a delivered copy of a message of class *cls* with reader *marks*."""
    if cls == "virus" and not marks & EICAR:
        return "attachment_replaced" if marks & ATTACHMENT else "attachment_removed"
    return "delivered_tagged" if marks & TAGGED else "delivered_clean"


class FateBooks:
    """Counts of (class, fate), and rejections by (class, stage, code)."""

    def __init__(self, draw: Callable[[int], str]) -> None:
        self.draw = draw
        self.fates: Counter[tuple[str, str]] = Counter()
        self.rejections: Counter[tuple[str, str, int]] = Counter()
        self.delays: dict[tuple[str, str], Metric] = {}  # (delay metric, class) -> its delays

    def on_delivered(self, seq: int, marks: int) -> None:
        cls = self.draw(seq)
        self.fates[(cls, fate_of(cls, marks))] += 1

    def on_delay(self, seq: int, metric: str, ns: int) -> None:
        """A delivered message's delay (``send_delay`` or ``receive_delay``), by class."""
        key = (metric, self.draw(seq))
        m = self.delays.get(key)
        if m is None:
            m = self.delays[key] = Metric(f"{metric}.{key[1]}")
        m.record(ns)

    def on_rejected(self, seq: int, stage: str, code: int) -> None:
        cls = self.draw(seq)
        self.fates[(cls, "rejected" if code >= 500 else "deferred")] += 1
        self.rejections[(cls, stage, code)] += 1

    def on_failed(self, seq: int) -> None:
        self.fates[(self.draw(seq), "failed")] += 1

    def on_undelivered(self, seq: int, *, stopped: bool) -> None:
        self.fates[(self.draw(seq), "in_flight_at_stop" if stopped else "not_delivered")] += 1

    # -- across processes ---------------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """Plain counts, to hand to another process (:meth:`absorb`)."""
        return {"fates": dict(self.fates), "rejections": dict(self.rejections)}

    def absorb(self, other: Mapping[str, Any]) -> None:
        self.fates.update(other.get("fates", {}))
        self.rejections.update(other.get("rejections", {}))

    def merge(self, other: FateBooks) -> None:
        self.fates.update(other.fates)
        self.rejections.update(other.rejections)
        for key, m in other.delays.items():
            if key in self.delays:
                self.delays[key].merge(m)
            else:
                mine = self.delays[key] = Metric(m.name)
                mine.merge(m)

    def latency(self) -> dict[str, Any]:
        """Per delay metric: each class's count, mean, p50, p99 and max (seconds), and the time
        the scanning path added: each of spam's and virus's mean minus ham's."""
        out: dict[str, Any] = {}
        for metric in sorted({k[0] for k in self.delays}):
            per = {c: m for (mm, c), m in self.delays.items() if mm == metric and m.count}
            row: dict[str, Any] = {
                c: {
                    "count": m.count,
                    "mean_s": m.mean_s,
                    "p50_s": m.percentile_s(50),
                    "p99_s": m.percentile_s(99),
                    "max_s": m.max_ns / 1e9,
                }
                for c, m in sorted(per.items())
            }
            ham = per.get("ham")
            if ham is not None and ham.mean_s is not None:
                row["added_mean_s"] = {
                    c: m.mean_s - ham.mean_s
                    for c, m in sorted(per.items())
                    if c != "ham" and m.mean_s is not None
                }
            out[metric] = row
        return out

    def by_class(self) -> dict[str, dict[str, int]]:
        """class -> fate -> count (the fates in :data:`FATES` order, zero ones left out)."""
        out: dict[str, dict[str, int]] = {}
        for cls in sorted({c for c, _ in self.fates}):
            out[cls] = {f: self.fates[(cls, f)] for f in FATES if self.fates[(cls, f)]}
        return out

    def rejections_doc(self) -> list[dict[str, Any]]:
        return [
            {"class": c, "stage": s, "code": code, "count": n}
            for (c, s, code), n in self.rejections.most_common()
        ]
