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
    mix = f.get("mix", {})
    for name, r in f["rates"].items():
        if not mix.get(r["class"]) and not r["n"]:
            continue  # a class the run did not send
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


def _ms(v: float) -> str:
    return f"{v * 1e6:.3g}µs" if v < 1e-3 else f"{v * 1e3:.3g}ms"


def latency_lines(doc: dict[str, Any]) -> list[str]:
    """``send_delay mean: ham 1.2ms, spam 1.3ms (+0.1ms), …``: each class's delay and what the
    scanning path added to the clean (ham) path."""
    f = doc.get("filters")
    if not f or not f.get("latency"):
        return []
    out = []
    for metric, row in f["latency"].items():
        added = row.get("added_mean_s", {})
        parts = []
        for cls in ("ham", "spam", "virus"):
            if cls in row:
                text = f"{cls} {_ms(row[cls]['mean_s'])}"
                if cls in added:
                    text += f" ({'+' if added[cls] >= 0 else '−'}{_ms(abs(added[cls]))})"
                parts.append(text)
        out.append(f"{metric} mean by class: " + ", ".join(parts))
    return out
