"""The filtering clauses in every report: the rows of the ``filters`` section of result.json
(one per rate: counts, rate, 95 % interval, the bound judged, the verdict, the sample needed),
the fates per class, and the words a check's result is shown with (``not shown`` beside
``pass`` and ``FAIL``). The terminal, report.html, JUnit and the step summary all use these."""

from __future__ import annotations

from typing import Any

RATE_HEAD = ("rate", "hits / n", "observed", "95 % interval", "claim", "bound", "verdict", "needs")
FATE_HEAD = ("class", "sent", "fates")


def pct(v: float | None) -> str:
    """A rate in per cent, with the digits small rates need (0.0100 %, 97.65 %)."""
    if v is None:
        return "–"
    return f"{100 * v:.4g} %"


def result_word(check: dict[str, Any]) -> str:
    """``pass``, ``FAIL`` or ``not shown``."""
    if check.get("pass"):
        return "pass"
    return "not shown" if check.get("state") == "not_shown" else "FAIL"


def verdict_word(verdict: str) -> str:
    """A run's verdict as shown: ``PASS``, ``FAIL`` or ``NOT SHOWN``."""
    return verdict.replace("_", " ").upper()


def rate_rows(doc: dict[str, Any]) -> list[list[str]]:
    """One row of text per rate of the run's ``filters`` section (none without one)."""
    f = doc.get("filters")
    if not f:
        return []
    rows = []
    for name, r in f["rates"].items():
        lo, hi = r["ci95"]
        verdict = r["verdict"].replace("_", " ")
        needs = f"{r['needed']:,} {r['class']}" if r["verdict"] == "not_shown" else ""
        rows.append(
            [
                name,
                f"{r['hits']} / {r['n']}",
                pct(r["rate"]),
                f"{pct(lo)} – {pct(hi)}",
                f"{r['claim']} {pct(r['promise'])}",
                pct(r["bound"]),
                verdict,
                needs,
            ]
        )
    return rows


def fate_rows(doc: dict[str, Any]) -> list[list[str]]:
    f = doc.get("filters")
    if not f:
        return []
    return [
        [
            cls,
            str(c["sent"]),
            ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in c["fates"].items()),
        ]
        for cls, c in f["classes"].items()
    ]


def trec_line(doc: dict[str, Any]) -> str:
    f = doc.get("filters")
    if not f:
        return ""
    t = f["trec"]

    def p(v: float | None) -> str:
        return "–" if v is None else f"{v:.4g} %"

    return f"TREC: hm% {p(t['hm_pct'])}, sm% {p(t['sm_pct'])}, lam% {p(t['lam_pct'])}"
