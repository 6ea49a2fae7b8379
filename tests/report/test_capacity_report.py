"""The capacity report: the latency-vs-load table, the step line, capacity.html."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from bench.capacity.document import build, confirmed_rate
from bench.capacity.search import Found
from bench.report.capacity import capacity_html, print_capacity, step_line


def entry(rate: float, verdict: str, slope: float, p99: float) -> dict[str, Any]:
    return {
        "rate": rate,
        "verdict": verdict,
        "failed": [] if verdict == "pass" else ["backlog_growth"],
        "backlog_slope": slope,
        "backlog": {"delivered_rate": min(rate, 300.0)},
        "latency_s": {"mean": p99 / 2, "p50": p99 / 2, "p90": p99 * 0.9, "p99": p99, "max": p99},
        "trial": 0,
    }


def doc(cut: str | None = None, at_100: str = "pass") -> dict[str, Any]:
    found = Found(290.0, 290.0, "backlog_growth", "backlog_growth", 305.0, cut is None, "")
    steps = [
        entry(100, "pass", 0.1, 0.02),
        entry(400, "fail", 98.0, 1.0),
        entry(290, "pass", 0.5, 0.03),
    ]
    confirm = [
        {"share": s, **entry(290 * s, v, 0.0, 0.03)}
        for s, v in ((0.8, "pass"), (1.0, at_100), (1.2, "fail"))
    ]
    return build(
        head={"scenario": "t"},
        found=found,
        precision=0.05,
        steps=steps,
        confirm=confirm,
        status="cut_short" if cut else "completed",
        reason=cut,
        wall_s=12.0,
        population=None,
    )


def text(d: dict[str, Any]) -> str:
    buf = io.StringIO()
    print_capacity(Console(file=buf, width=140), d)
    return buf.getvalue()


def test_the_table_lists_every_step_by_rate_and_the_answer() -> None:
    d = doc()
    assert d["capacity"]["sustainable_rate"] == 290.0 and d["capacity"]["per_minute"] == 17400.0
    assert d["capacity"]["confirmed"] is True and d["cut_short"] is False
    out = text(d)
    assert "Latency vs load" in out
    rows = [line for line in out.splitlines() if "│" in line and line.split("│")[1].strip()]
    rates = [float(r.split("│")[1]) for r in rows]
    assert rates == sorted(rates) and 400.0 in rates and 232.0 in rates
    assert "sustainable rate: 290 msgs/s (17400/min)" in out
    assert "failed first: backlog_growth" in out
    assert "confirmations: 80% pass, 100% pass, 120% fail" in out


def test_a_failed_100_percent_confirmation_gives_the_rate_that_held() -> None:
    """The search's rate did not hold for the longer run: it is an upper bound, and the 80 %
    confirmation's rate is what was proven for that long (capacity.confirmed_rate)."""
    ok, failed = doc(), doc(at_100="fail")
    assert ok["capacity"]["confirmed_rate"] == 290.0
    assert failed["capacity"]["confirmed"] is False
    assert failed["capacity"]["confirmed_rate"] == 232.0
    assert (
        "the longer 100 % run failed: treat the rate as an upper bound; 232 msgs/s held for "
        "the longer run (80 %)" in text(failed)
    )
    none = doc(at_100="fail")
    none["confirm"][0]["verdict"] = "fail"
    assert confirmed_rate(none["confirm"]) is None and confirmed_rate([]) is None


def test_a_cut_short_search_says_so() -> None:
    out = text(doc("interrupted (SIGINT)"))
    assert "cut short: interrupted (SIGINT)" in out


def test_the_step_line() -> None:
    f = Found(290.0, None, None, None, None, False, "")
    line = step_line({"n": 3, **entry(400, "fail", 98.0, 1.0)}, f, 41.6)
    assert line == (
        "step 3: 400 msgs/s fail (backlog_growth), p99 1s, backlog +98.0/s; "
        "best proven 290/s; 42s left"
    )


def test_the_page_has_both_plots() -> None:
    html = capacity_html(doc())
    assert 'data-plot="latency-vs-load"' in html and 'data-plot="backlog-vs-load"' in html
    assert "NaN" not in html
