"""The filtering clauses as rates with honest intervals. Pure.

From the fate books (:class:`bench.core.fates.FateBooks`), each rate counts its *hits* among the
*n* messages of its class that got a verdict (a 4xx, a broken connection or a run stopped first
give none):

- ``spam_caught``: spam rejected (5xx), tagged, or never delivered — promised ≥ 97 %;
- ``ham_misjudged``: ham rejected, tagged, or never delivered — promised ≤ 0.01 %
  (a quarantined ham is indistinguishable from a lost one: it counts against the filter);
- ``virus_detected``: virus rejected, tagged, stripped, replaced or never delivered — ≥ 99 %;
- ``virus_removed``: virus whose EICAR file never reached the mailbox — ≥ 99 %.

Each comes with the exact two-sided 95 % Clopper–Pearson interval, and with the one-sided 95 %
bound on the promise's side (lower for ≥, upper for ≤), the one the claim is judged by:
``pass`` when that bound meets the promise, ``fail`` when the other one-sided bound shows it
broken, and otherwise ``not_shown`` — too few messages to tell — with the number of messages of
the class a sample with as many failures would need (:func:`needed`; the field notes' table:
0 false positives in 29,956 ham show ≤ 0.01 %). TREC's hm%, sm% and lam% stand beside them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from scipy.stats import beta

from bench.core.fates import NO_VERDICT, FateBooks

CONFIDENCE = 0.95
Verdict = Literal["pass", "fail", "not_shown"]


def interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact two-sided Clopper–Pearson interval of *k* successes in *n* trials."""
    if n <= 0:
        return (0.0, 1.0)
    a = (1 - confidence) / 2
    lo = 0.0 if k == 0 else float(beta.ppf(a, k, n - k + 1))
    hi = 1.0 if k == n else float(beta.ppf(1 - a, k + 1, n - k))
    return (lo, hi)


def lower(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The exact one-sided lower bound of the rate of *k* in *n*."""
    if n <= 0 or k == 0:
        return 0.0
    return float(beta.ppf(1 - confidence, k, n - k + 1))


def upper(k: int, n: int, confidence: float = CONFIDENCE) -> float:
    """The exact one-sided upper bound of the rate of *k* in *n*."""
    if n <= 0 or k >= n:
        return 1.0
    return float(beta.ppf(confidence, k + 1, n - k))


def _meets(op: str, failures: int, n: int, promise: float) -> bool:
    if op == ">=":  # the rate of hits: n - failures of n
        return lower(n - failures, n) >= promise
    return upper(failures, n) <= promise


def needed(op: str, promise: float, failures: int) -> int:
    """The fewest messages whose one-sided 95 % bound meets *promise* (``rate OP promise``)
    with *failures* of them failing (misses for ≥, hits for ≤)."""
    lo, hi = failures + 1, failures + 2
    while not _meets(op, failures, hi, promise):
        lo, hi = hi, hi * 2
        if hi > 10**12:
            raise ValueError(f"no sample with {failures} failures shows {op} {promise}")
    while lo < hi:
        mid = (lo + hi) // 2
        if _meets(op, failures, mid, promise):
            hi = mid
        else:
            lo = mid + 1
    return lo


@dataclass(frozen=True, slots=True)
class Rate:
    """One rate of the filtering clauses, judged against its promise."""

    name: str
    cls: str
    hits: int
    n: int
    op: str  # ">=" or "<=": the promise's direction
    promise: float

    @property
    def rate(self) -> float | None:
        return self.hits / self.n if self.n else None

    @property
    def failures(self) -> int:
        return self.n - self.hits if self.op == ">=" else self.hits

    @property
    def bound(self) -> float:
        """The one-sided 95 % bound on the promise's side."""
        return lower(self.hits, self.n) if self.op == ">=" else upper(self.hits, self.n)

    @property
    def verdict(self) -> Verdict:
        if self.n and _meets(self.op, self.failures, self.n, self.promise):
            return "pass"
        if self.n:
            other = upper(self.hits, self.n) if self.op == ">=" else lower(self.hits, self.n)
            broken = other < self.promise if self.op == ">=" else other > self.promise
            if broken:
                return "fail"
        return "not_shown"

    @property
    def needed(self) -> int:
        """Messages of the class a sample with as many failures as this one needs."""
        return needed(self.op, self.promise, self.failures)

    def as_dict(self) -> dict[str, Any]:
        lo, hi = interval(self.hits, self.n)
        return {
            "class": self.cls,
            "hits": self.hits,
            "n": self.n,
            "rate": self.rate,
            "ci95": [lo, hi],
            "claim": self.op,
            "promise": self.promise,
            "bound": self.bound,
            "verdict": self.verdict,
            "needed": self.needed,
        }


# The SLA's filtering clauses (shared/sla-source.md): name -> (class, op, promise, hit fates).
CLAUSES: dict[str, tuple[str, str, float, tuple[str, ...]]] = {
    "spam_caught": ("spam", ">=", 0.97, ("rejected", "delivered_tagged", "not_delivered")),
    "ham_misjudged": ("ham", "<=", 0.0001, ("rejected", "delivered_tagged", "not_delivered")),
    "virus_detected": (
        "virus",
        ">=",
        0.99,
        (
            "rejected",
            "delivered_tagged",
            "attachment_removed",
            "attachment_replaced",
            "not_delivered",
        ),
    ),
    "virus_removed": (
        "virus",
        ">=",
        0.99,
        ("rejected", "attachment_removed", "attachment_replaced", "not_delivered"),
    ),
}


def rates(by_class: Mapping[str, Mapping[str, int]]) -> dict[str, Rate]:
    """The four rates from fate counts (class -> fate -> count)."""
    out = {}
    for name, (cls, op, promise, hit) in CLAUSES.items():
        fates = by_class.get(cls, {})
        n = sum(c for f, c in fates.items() if f not in NO_VERDICT)
        hits = sum(fates.get(f, 0) for f in hit)
        out[name] = Rate(name, cls, hits, n, op, promise)
    return out


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def trec(by_class: Mapping[str, Mapping[str, int]]) -> dict[str, float | None]:
    """TREC Spam Track's hm% (ham misclassified), sm% (spam missed) and lam% (the logistic
    average of the two; a rate of 0 or 1 is taken as (x + 0.5) / (n + 1) for the logit)."""
    r = rates(by_class)
    ham, spam = r["ham_misjudged"], r["spam_caught"]
    hm = ham.hits / ham.n if ham.n else None
    sm = (spam.n - spam.hits) / spam.n if spam.n else None
    lam = None
    if hm is not None and sm is not None:
        a = (ham.hits + 0.5) / (ham.n + 1)
        b = (spam.n - spam.hits + 0.5) / (spam.n + 1)
        z = (_logit(a) + _logit(b)) / 2
        lam = 100 / (1 + math.exp(-z))
    return {
        "hm_pct": None if hm is None else 100 * hm,
        "sm_pct": None if sm is None else 100 * sm,
        "lam_pct": lam,
    }


def summary(books: FateBooks, mix: Mapping[str, float]) -> dict[str, Any]:
    """result.json's ``filters`` section: the mix, each class's fates (with ``sent``), the
    rejections by class, stage and code, the four rates and TREC's figures."""
    by_class = books.by_class()
    return {
        "mix": dict(mix),
        "classes": {
            cls: {"sent": sum(by_class.get(cls, {}).values()), "fates": by_class.get(cls, {})}
            for cls in mix
            if mix[cls] > 0 or cls in by_class
        },
        "rejections": books.rejections_doc(),
        "rates": {name: r.as_dict() for name, r in rates(by_class).items()},
        "trec": trec(by_class),
        "latency": books.latency(),
    }
