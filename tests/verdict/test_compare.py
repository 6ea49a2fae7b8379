"""The regression gate: compare two results (pure), ``mailsla compare``, JUnit XML, the GitHub
step summary, and ``mailsla run --baseline`` end to end."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.cli.compare import gate
from bench.cli.main import main
from bench.core.metrics import MetricSet
from bench.report.junit import junit_tree, write_junit
from bench.report.step_summary import append_summary, markdown
from bench.verdict.compare import BETTER, MISSING, NOISE, OK, REGRESSED, compare, regressed
from bench.verdict.tolerance import Tolerance, ToleranceError, parse_tolerance, parse_tolerances
from tests.e2e.test_run import QUICK, mailsla, result, scenario


def make_doc(
    metrics: dict[str, list[float]],
    *,
    status: str = "completed",
    checks: list[dict[str, Any]] | None = None,
    no_fault_rate: float = 1.0,
    windows: int = 1,
) -> dict[str, Any]:
    """A mailsla.result/1 document whose metrics hold *metrics* (seconds), real histograms."""
    ms = MetricSet()
    for name, values in metrics.items():
        for v in values:
            ms[name].record(round(v * 1e9))
    n = max((len(v) for v in metrics.values()), default=0)
    return {
        "schema": "mailsla.result/1",
        "run": {
            "scenario": {"name": "t"},
            "started_at": "2026-01-01T00:00:00+00:00",
            "ended_at": "2026-01-01T00:00:07.5+00:00",
            "status": status,
            "reason": None if status == "completed" else "interrupted (SIGINT)",
        },
        "counts": {"planned": n, "sent": n, "accepted": n, "delivered": n, "undelivered": 0},
        "accounting": {"identity": "planned = …", "holds": True},
        "metrics": ms.summaries(),
        "sla": {
            "verdict": "pass" if all(c["pass"] for c in checks or []) else "fail",
            "checks": checks or [],
        },
        "availability": {
            "windows": windows,
            "no_fault_rate": no_fault_rate,
            "connectivity_rate": 1.0,
        },
    }


def uniform(seed: int, n: int, lo: float, hi: float, shift: float = 0.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.uniform(lo, hi) + shift for _ in range(n)]


def lognormal(seed: int, n: int, median: float, scale: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(0, 0.5) * median * scale for _ in range(n)]


def row(rows: list[Any], name: str) -> Any:
    return next(r for r in rows if r.name == name)


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


# -- the comparison ---------------------------------------------------------------------


def test_a_result_compared_with_itself_is_ok_in_every_row() -> None:
    doc = make_doc({"send_delay": uniform(1, 500, 0.001, 0.005), "submit_latency": [0.002] * 9})
    rows = compare(doc, doc)
    names = {r.name for r in rows}
    assert {"send_delay.count", "send_delay.mean", "send_delay.p99.9", "send_delay.max"} <= names
    assert {"availability.no_fault_rate", "counts.delivered_ratio"} <= names
    assert all(r.verdict == OK for r in rows)
    assert row(rows, "send_delay.p99").delta == 0


def test_a_50ms_shift_in_send_delay_regresses() -> None:
    base = make_doc({"send_delay": uniform(1, 8000, 0.0, 0.002)})
    cur = make_doc({"send_delay": uniform(2, 8000, 0.0, 0.002, shift=0.050)})
    rows = compare(base, cur)
    bad = {r.name for r in regressed(rows)}
    assert bad == {f"send_delay.{s}" for s in ("mean", "p50", "p99", "p99.9", "max")}
    mean = row(rows, "send_delay.mean")
    assert mean.delta == pytest.approx(0.050, abs=0.001)
    assert mean.current_ci[0] > mean.baseline_ci[1]  # the intervals do not overlap
    back = compare(cur, base)
    assert not regressed(back) and row(back, "send_delay.p99").verdict == BETTER


def test_too_few_samples_leave_a_tail_percentile_open() -> None:
    base = make_doc({"send_delay": uniform(1, 300, 0.0, 0.002)})
    cur = make_doc({"send_delay": uniform(2, 300, 0.0, 0.002, shift=0.050)})
    rows = compare(base, cur)
    assert {r.name for r in regressed(rows)} == {
        "send_delay.mean",
        "send_delay.p50",
        "send_delay.max",
    }
    p999 = row(rows, "send_delay.p99.9")  # ranks 299.7 ± 1.4 run past the 300th sample
    assert p999.verdict == NOISE and p999.baseline_ci[1] == float("inf")
    assert p999.note == "too few samples to bound p99.9: baseline 300, current 300"


def test_a_small_shift_is_within_the_noise_of_few_samples_not_of_many() -> None:
    base = make_doc({"send_delay": lognormal(1, 60, 0.020)})
    cur = make_doc({"send_delay": lognormal(2, 60, 0.020, scale=1.15)})
    rows = compare(base, cur)
    assert not regressed(rows)
    assert row(rows, "send_delay.mean").verdict in (OK, NOISE)
    # the same 15 % shift measured on 20,000 messages is beyond the noise
    big_base = make_doc({"send_delay": lognormal(1, 20_000, 0.020)})
    big_cur = make_doc({"send_delay": lognormal(2, 20_000, 0.020, scale=1.15)})
    big = compare(big_base, big_cur)
    assert row(big, "send_delay.mean").verdict == REGRESSED
    assert row(big, "send_delay.p50").verdict == REGRESSED


def test_values_in_one_hdr_bucket_are_within_noise_even_without_tolerance() -> None:
    base = make_doc({"send_delay": [0.020000] * 5000})
    cur = make_doc({"send_delay": [0.020010] * 5000})  # +0.05 %: the same 3-digit bucket
    tols = parse_tolerances(["*.p50=0%", "*.p99=0%", "*.max=0%"])
    rows = compare(base, cur, tols)
    for stat in ("p50", "p99", "max"):
        assert row(rows, f"send_delay.{stat}").verdict == NOISE
    further = make_doc({"send_delay": [0.020100] * 5000})  # +0.5 %: another bucket
    for stat in ("p50", "p99", "max"):
        assert row(compare(base, further, tols), f"send_delay.{stat}").verdict == REGRESSED


def test_tolerance_overrides_change_the_verdict() -> None:
    base = make_doc({"send_delay": uniform(1, 300, 0.0, 0.002)})
    cur = make_doc({"send_delay": uniform(2, 300, 0.0, 0.002, shift=0.050)})
    tols = parse_tolerances(["send_delay.p50=60ms", "*.max=10000%"])
    rows = compare(base, cur, tols)
    assert row(rows, "send_delay.p50").verdict == OK
    assert row(rows, "send_delay.p50").tolerance == "60ms"
    assert row(rows, "send_delay.max").verdict == OK
    assert row(rows, "send_delay.mean").verdict == REGRESSED


def test_missing_metrics_are_reported_and_lost_data_regresses() -> None:
    base = make_doc({"send_delay": [0.01] * 20, "receive_delay": [0.01] * 20})
    cur = make_doc({"send_delay": [0.01] * 20, "stage.starttls": [0.001] * 20})
    rows = compare(base, cur)
    gone = row(rows, "receive_delay.count")
    assert gone.verdict == REGRESSED and gone.note == "not in current"
    new = row(rows, "stage.starttls.count")
    assert new.verdict == MISSING and new.baseline is None
    assert {r.name for r in regressed(rows)} == {"receive_delay.count"}


def test_rates_regress_only_beyond_their_binomial_noise() -> None:
    base = make_doc({"send_delay": [0.01] * 20}, windows=10)
    few = make_doc({"send_delay": [0.01] * 20}, no_fault_rate=0.9, windows=10)
    assert row(compare(base, few), "availability.no_fault_rate").verdict == NOISE
    many = make_doc({"send_delay": [0.01] * 20}, no_fault_rate=0.9, windows=1000)
    assert row(compare(base, many), "availability.no_fault_rate").verdict == REGRESSED
    lost = make_doc({"send_delay": [0.01] * 20})
    lost["counts"]["delivered"] = 10
    assert row(compare(base, lost), "counts.delivered_ratio").verdict == REGRESSED


def test_tolerances_parse() -> None:
    assert parse_tolerance("send_delay.p99=20%") == (("send_delay", "p99"), Tolerance(rel=0.2))
    assert parse_tolerance("send_delay.p99.9 = 5ms")[1] == Tolerance(abs=0.005)
    assert parse_tolerance("stage.mail.max=1s")[0] == ("stage.mail", "max")
    assert parse_tolerance("*.mean=15%")[0] == ("*", "mean")
    assert parse_tolerance("send_delay.count=50")[1] == Tolerance(abs=50)
    assert parse_tolerance("availability.no_fault_rate=0.5%")[1] == Tolerance(abs=0.005)
    assert parse_tolerance("counts.delivered_ratio=1pp")[1] == Tolerance(abs=0.01)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("send_delay.p99", "is not a tolerance (write metric.stat=VALUE"),
        ("send_delay.p95=10%", "unknown stat 'p95'"),
        ("nosuch.p99=10%", "unknown metric 'nosuch'"),
        ("send_delay.p99=fast", "'fast' is not a duration"),
        ("send_delay.p99=-5%", "must be a finite value >= 0"),
        ("send_delay.count=many", "'many' is not a number"),
        ("availability.no_fault_rate=0.001", "percentage points"),
        ("send_delay.no_fault_rate=1%", "no_fault_rate belongs to availability"),
    ],
)
def test_tolerance_errors_quote_the_input(text: str, says: str) -> None:
    with pytest.raises(ToleranceError) as exc:
        parse_tolerance(text)
    assert says in str(exc.value) and repr(text) in str(exc.value)


# -- mailsla compare ----------------------------------------------------------------------


def test_compare_cli_exits_1_naming_the_regressed_metric(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", make_doc({"send_delay": uniform(1, 300, 0.0, 0.002)}))
    (tmp_path / "b").mkdir()
    b_doc = make_doc({"send_delay": uniform(2, 300, 0.0, 0.002, shift=0.050)})
    write(tmp_path / "b" / "result.json", b_doc)
    r = CliRunner().invoke(main, ["compare", str(a), str(tmp_path / "b")])
    assert r.exit_code == 1, r.output
    assert "REGRESSED" in r.output and "send_delay" in r.output
    r = CliRunner().invoke(main, ["compare", str(a), str(a)])
    assert r.exit_code == 0, r.output
    assert "no regression" in r.output
    tol = ["--tolerance", "*.mean=1s", "--tolerance", "*.p50=1s", "--tolerance", "*.p99=1s"]
    tol += ["--tolerance", "*.p99.9=1s", "--tolerance", "*.max=1s"]
    r = CliRunner().invoke(main, ["compare", str(a), str(tmp_path / "b"), *tol])
    assert r.exit_code == 0, r.output


def test_compare_cli_json_rows(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", make_doc({"send_delay": [0.01] * 5}))
    r = CliRunner().invoke(main, ["compare", str(a), str(a), "--json"])
    rows = json.loads(r.output)
    assert r.exit_code == 0 and {x["verdict"] for x in rows} == {OK}


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot read"),
        ("{not json", "not JSON"),
        ('{"schema": "other/1"}', "not a mailsla result"),
        ('{"schema": "mailsla.result/1", "metrics": [], "counts": {}}', "must be objects"),
    ],
)
def test_compare_cli_bad_files_exit_2_with_one_line(
    tmp_path: Path, content: str | None, says: str
) -> None:
    good = write(tmp_path / "good.json", make_doc({"send_delay": [0.01] * 5}))
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    r = CliRunner().invoke(main, ["compare", str(good), str(bad)])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and str(bad) in lines[0], r.output


def test_compare_cli_bad_tolerance_exits_2(tmp_path: Path) -> None:
    good = write(tmp_path / "good.json", make_doc({"send_delay": [0.01] * 5}))
    r = CliRunner().invoke(main, ["compare", str(good), str(good), "--tolerance", "p99=5"])
    assert r.exit_code == 2 and "error: 'p99=5'" in r.output


def test_gate_compares_a_run_with_a_baseline_file(tmp_path: Path) -> None:
    base = write(tmp_path / "base.json", make_doc({"send_delay": uniform(1, 300, 0.0, 0.002)}))
    cur = make_doc({"send_delay": uniform(2, 300, 0.0, 0.002, shift=0.050)})
    rows, bad = gate(cur, base, ["send_delay.p50=20%"])
    assert bad and row(rows, "send_delay.p50").verdict == REGRESSED
    assert row(rows, "send_delay.p50").tolerance == "20%"
    rows, bad = gate(make_doc({"send_delay": uniform(1, 300, 0.0, 0.002)}), base, ())
    assert not bad


# -- JUnit and the step summary -------------------------------------------------------------

CHECKS = [
    {"name": "send_delay.mean", "op": "<=", "limit": 60.0, "observed": 0.05, "pass": True,
     "source": "exmail"},
    {"name": "send_delay.p99", "op": "<", "limit": 0.005, "observed": 0.051, "pass": False,
     "source": "threshold"},
    {"name": "availability.no_fault_rate", "op": ">=", "limit": 0.999, "observed": None,
     "pass": False, "source": "exmail", "note": "no data"},
]  # fmt: skip


def test_junit_has_a_case_per_check_and_row_with_the_failures(tmp_path: Path) -> None:
    base = make_doc({"send_delay": uniform(1, 300, 0.0, 0.002)})
    cur = make_doc({"send_delay": uniform(2, 300, 0.0, 0.002, shift=0.050)}, checks=CHECKS)
    rows = compare(base, cur)
    path = tmp_path / "sub" / "junit.xml"
    write_junit(path, cur, rows)
    root = ET.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "mailsla t"
    assert suite.get("time") == "7.500"
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert len(cases) == len(CHECKS) + 1 + len(rows) == int(suite.get("tests", "0"))
    assert cases["mailsla.sla.exmail", "send_delay.mean"].find("failure") is None
    fail = cases["mailsla.sla.threshold", "send_delay.p99"].find("failure")
    assert fail is not None and fail.get("message") == "observed 51ms, not < limit 5ms"
    nodata = cases["mailsla.sla.exmail", "availability.no_fault_rate"].find("failure")
    assert nodata is not None and "no data" in str(nodata.get("message"))
    assert cases["mailsla.accounting", "accounting identity"].find("failure") is None
    reg = cases["mailsla.baseline", "send_delay.mean"].find("failure")
    assert reg is not None and "tolerance 10% or 1ms" in str(reg.get("message"))
    assert cases["mailsla.baseline", "send_delay.count"].find("failure") is None
    failures = 2 + len(regressed(rows))
    assert suite.get("failures") == str(failures) and suite.get("errors") == "0"


def test_junit_reports_an_unfinished_run_as_an_error() -> None:
    doc = make_doc({"send_delay": [0.01] * 5}, status="interrupted")
    doc["accounting"]["holds"] = False
    suite = junit_tree(doc).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1" and suite.get("failures") == "1"
    run = next(c for c in suite.iter("testcase") if c.get("name") == "run")
    err = run.find("error")
    assert err is not None and err.get("message") == "interrupted (SIGINT)"


def test_junit_and_summary_show_mail_in_flight_at_the_stop_apart() -> None:
    doc = make_doc({"send_delay": [0.01] * 5}, status="interrupted")
    doc["counts"]["in_flight_at_stop"] = 7
    suite = junit_tree(doc).getroot().find("testsuite")
    assert suite is not None and suite.get("skipped") == "1"
    case = next(c for c in suite.iter("testcase") if c.get("name") == "mail in flight at the stop")
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message", "").startswith("7 accepted message(s)")
    assert "in flight at stop **7**" in markdown(doc)


def test_step_summary_is_appended_when_github_names_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = make_doc({"send_delay": uniform(1, 300, 0.0, 0.002)})
    cur = make_doc({"send_delay": uniform(2, 300, 0.0, 0.002, shift=0.050)}, checks=CHECKS)
    rows = compare(base, cur)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert append_summary(cur, rows) is None
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert append_summary(cur, rows) == summary
    text = summary.read_text()
    assert text.startswith("# earlier step\n\n## ")
    assert f"mailsla t: FAIL, {len(regressed(rows))} REGRESSED" in text
    assert "| send_delay.p99 | 51ms | < | 5ms | **FAIL** |" in text
    assert "| send_delay | mean |" in text and "**REGRESSED**" in text
    assert "Availability: no-fault rate 100.000 %" in text
    a, b = write(tmp_path / "a.json", base), write(tmp_path / "b.json", cur)
    assert CliRunner().invoke(main, ["compare", str(a), str(b)]).exit_code == 1
    assert summary.read_text().count("\n## ") == 2  # compare appended one more


# -- end to end -----------------------------------------------------------------------------


@pytest.mark.slow
def test_run_with_a_baseline_gates_and_writes_junit(tmp_path: Path) -> None:
    s = str(scenario(tmp_path, QUICK))
    a, b, junit = tmp_path / "A", tmp_path / "B", tmp_path / "J.xml"
    p = mailsla(
        "run", s, "--no-live", "--out", str(a),
        "--set", 'fakemta.processing_delay="const(0ms)"',
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    # a baseline of the same scenario, only faster: A's numbers under B's processing delay
    base = result(a)
    base["run"]["scenario"]["fakemta"]["processing_delay"] = "const(50ms)"
    faster = write(tmp_path / "faster.json", base)
    p = mailsla(
        "run", s, "--no-live", "--out", str(b),
        "--set", 'fakemta.processing_delay="const(50ms)"',
        "--baseline", str(faster), "--junit", str(junit),
    )  # fmt: skip
    assert p.returncode == 1, p.stdout + p.stderr  # the SLA passed; the gate failed it
    assert result(b)["sla"]["verdict"] == "pass"
    assert "Baseline comparison" in p.stdout and "send_delay" in p.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "mailsla t"
    failed = {c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None}
    assert "send_delay.mean" in failed and "send_delay.p50" in failed
    p = mailsla("compare", str(a), str(b))  # another processing delay: refused
    assert p.returncode == 2, p.stdout + p.stderr
    assert "fakemta.processing_delay: baseline const(0ms), current const(50ms)" in p.stderr
    p = mailsla("compare", str(a), str(b), "--allow-different")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "send_delay" in p.stderr and "REGRESSED" in p.stdout
    assert "warning: comparing runs of different scenarios" in p.stderr
    p = mailsla("compare", str(a), str(a / "result.json"))
    assert p.returncode == 0, p.stdout + p.stderr


@pytest.mark.slow
def test_two_runs_of_one_scenario_pass_the_default_tolerances(tmp_path: Path) -> None:
    """Run-to-run noise on this shared machine must not fail the gate."""
    s = str(scenario(tmp_path, QUICK.replace('duration = "2s"', 'duration = "4s"')))
    for name in ("A", "B"):
        p = mailsla("run", s, "--no-live", "--out", str(tmp_path / name))
        assert p.returncode == 0, p.stderr
    p = mailsla("compare", str(tmp_path / "A"), str(tmp_path / "B"))
    assert p.returncode == 0, p.stdout + p.stderr
