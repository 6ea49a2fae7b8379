"""Comparable or refused: the scenario fingerprint and its differences (pure), counts compared
per second of the sending phase, the SLA's rows first, and ``mailsla compare`` refusing (exit 2)
or warning with ``--allow-different``, its table unwrapped when stdout is no terminal."""

from __future__ import annotations

import copy
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from bench.cli.compare import GateOptions, finish, gate, prepare
from bench.cli.main import main
from bench.cli.options import load_scenario
from bench.errors import ExitCode
from bench.report.junit import junit_tree
from bench.report.step_summary import markdown
from bench.run.results import RunResult
from bench.verdict.comparable import (
    NotComparableError,
    differences,
    fingerprint,
    per_second,
    sending_seconds,
)
from bench.verdict.compare import OK, REGRESSED, compare, regressed
from bench.verdict.sla import Verdict
from bench.verdict.tolerance import Tolerances, parse_tolerances
from tests.verdict.test_compare import make_doc, row, uniform, write

ROOT = Path(__file__).resolve().parents[2]
BASELINE = ROOT / "results" / "baseline" / "quickstart" / "result.json"


def baseline() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(BASELINE.read_text())
    return doc


def with_scenario(doc: dict[str, Any], **sets: Any) -> dict[str, Any]:
    """*doc* with its run.scenario changed at dotted keys (``load__duration="5s"``)."""
    out = copy.deepcopy(doc)
    sc = out["run"].setdefault("scenario", {})
    for key, v in sets.items():
        *parents, last = key.split("__")
        node = sc
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = v
    return out


def timed(n: int, seconds: int, **sets: Any) -> dict[str, Any]:
    """A result of *n* deliveries (send_delay and stage.mail) over a *seconds* sending phase,
    and 10 connections (stage.connect)."""
    doc = make_doc(
        {
            "send_delay": uniform(1, n, 0.005, 0.050),
            "stage.mail": uniform(2, n, 0.0001, 0.0005),
            "stage.connect": uniform(3, 10, 0.0001, 0.0002),
        }
    )
    return with_scenario(
        doc, **{"load__duration": f"{seconds}s", "load__rate": n / seconds, **sets}
    )


# -- the fingerprint -------------------------------------------------------------------------


def test_the_committed_baseline_is_comparable_with_itself() -> None:
    doc = baseline()
    assert differences(doc, doc) == []
    fp = fingerprint(doc)
    assert fp["load.model"] == "constant" and fp["load.rate"] == 200.0
    assert fp["load.duration"] == "20s" and fp["fakemta.processing_delay"] == "uniform(5ms, 50ms)"
    assert fp["message.size"] == "2KiB" and fp["system.kind"] == "fakemta"
    for left_out in ("name", "seed", "load.drain", "load.workers", "sla.thresholds", "load.steps"):
        assert left_out not in fp


def test_every_difference_is_named_with_both_values() -> None:
    base = baseline()
    cur = with_scenario(
        base,
        load__duration="5s",
        load__rate=50,
        fakemta__processing_delay="const(200ms)",
        fakemta__faults=[{"stage": "dot", "kind": "4xx", "probability": 0.1}],
        postoffice__defer=0.2,
        message__size="64KiB",
    )
    cur["run"]["seed"] = cur["run"]["scenario"]["seed"] = 9  # another sample: no difference
    cur["run"]["scenario"]["load"]["drain"] = "60s"
    texts = [d.text for d in differences(base, cur)]
    assert texts == [
        "fakemta.processing_delay: baseline uniform(5ms, 50ms), current const(200ms)",
        "fakemta.faults: baseline none, current [{stage=dot, kind=4xx, probability=0.1}]",
        "postoffice.defer: baseline 0, current 0.2",
        "load.rate: baseline 200, current 50",
        "load.duration: baseline 20s, current 5s",
        "message.size: baseline 2KiB, current 64KiB",
    ]


def test_keys_count_only_where_they_apply_and_missing_ones_are_defaults() -> None:
    smtp = make_doc({"send_delay": [0.01] * 5})
    smtp["run"]["scenario"] = {"name": "t", "system": {"kind": "smtp"}}
    other = with_scenario(smtp, fakemta__processing_delay="const(1s)")
    assert differences(smtp, other) == []  # no fake MTA in either run
    closed = with_scenario(smtp, load__model="closed", load__rate=5)
    assert differences(closed, with_scenario(closed, load__rate=500)) == []
    assert [d.key for d in differences(closed, with_scenario(closed, load__think_time="1s"))] == [
        "load.think_time"
    ]
    # not recorded = the default; the same value written differently is the same
    bare = make_doc({"send_delay": [0.01] * 5})
    assert differences(bare, with_scenario(bare, load__duration="20000ms", load__rate=100)) == []
    assert [d.text for d in differences(bare, with_scenario(bare, load__sessions=50))] == [
        "load.sessions: baseline 10, current 50"
    ]


def test_sending_seconds_from_the_schedule() -> None:
    assert sending_seconds(baseline()) == 20.0
    steps = [{"rate": 10, "duration": "5s"}, {"rate": 20, "duration": "10s"}]
    assert sending_seconds(timed(10, 2, load__model="steps", load__steps=steps)) == 15.0
    assert sending_seconds(timed(100, 20, load__max_messages=100)) == pytest.approx(20.0)
    assert sending_seconds(timed(100, 20, load__rate=100, load__max_messages=100)) == 1.0
    cut = timed(100, 20)  # make_doc's run spans 7.5 s
    cut["run"]["status"] = "interrupted"
    assert sending_seconds(cut) == 7.5
    cut["run"]["sending_s"] = 3.25  # recorded: taken as it is
    assert sending_seconds(cut) == 3.25


# -- counts per second -----------------------------------------------------------------------


def test_a_shorter_run_is_not_a_count_regression() -> None:
    long, short = timed(4000, 20), timed(1000, 5)
    rows = compare(long, short)
    count = row(rows, "send_delay.count")
    assert count.kind == "per_s" and count.verdict == OK
    assert count.baseline == pytest.approx(200) and count.current == pytest.approx(200)
    assert (count.baseline_n, count.current_n) == (4000, 1000)
    assert count.note == "per second: 4000 in 20s vs 1000 in 5s"
    assert count.as_dict()["baseline_count"] == 4000
    assert row(rows, "stage.mail.count").verdict == OK
    connect = row(rows, "stage.connect.count")  # 10 sessions in both: a count, not a rate
    assert connect.kind == "count" and connect.current == 10 and connect.verdict == OK
    for a, b in ((long, short), (short, long)):
        assert not [r.name for r in regressed(compare(a, b)) if r.stat == "count"]


def test_fewer_messages_per_second_still_regress() -> None:
    rows = compare(timed(4000, 20), timed(500, 5))
    assert row(rows, "send_delay.count").verdict == REGRESSED
    # a tolerance in messages counts over the baseline's 20 s: 2000 messages = 100/s
    tols = parse_tolerances(["send_delay.count=2100"])
    assert row(compare(timed(4000, 20), timed(500, 5), tols), "send_delay.count").verdict == OK


def test_connections_reopened_as_the_run_goes_are_counted_per_second() -> None:
    a = timed(4000, 20, load__connection="per_message")
    b = timed(1000, 5, load__connection="per_message")
    assert per_second("stage.connect", a, b) == (20.0, 5.0)
    assert per_second("stage.connect", timed(10, 20), timed(10, 5)) is None
    assert per_second("send_delay", timed(10, 20), timed(10, 5)) == (20.0, 5.0)


# -- the table -------------------------------------------------------------------------------


def test_the_sla_rows_come_first_and_the_stages_last() -> None:
    names = ("stage.mail", "service_time", "submit_latency", "receive_delay", "send_delay")
    doc = make_doc({n: [0.01] * 20 for n in names})
    metrics = list(dict.fromkeys(r.metric for r in compare(doc, doc)))
    assert metrics == [
        "send_delay",
        "receive_delay",
        "availability",
        "counts",
        "submit_latency",
        "service_time",
        "stage.mail",
    ]
    assert [r.stat for r in compare(doc, doc)][:6] == [
        "mean",
        "p50",
        "p99",
        "p99.9",
        "max",
        "count",
    ]


# -- mailsla compare, the gate ---------------------------------------------------------------


def test_compare_refuses_runs_of_different_scenarios_exit_2(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", timed(4000, 20))
    b = write(tmp_path / "b.json", timed(1000, 5, message__recipients=2, message__users=200))
    r = CliRunner().invoke(main, ["compare", str(a), str(b)])
    assert r.exit_code == ExitCode.USAGE, r.output
    assert r.stderr.splitlines() == [
        f"error: {a} and {b} are not comparable: their scenarios differ in 3 keys",
        "       load.duration: baseline 20s, current 5s",  # the rate is 200/s in both
        "       message.recipients: baseline 1, current 2",
        "       message.users: baseline 100, current 200",
        "       (compare them anyway with --allow-different)",
    ]
    assert r.stdout == ""  # no table


def test_allow_different_warns_and_compares(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", timed(4000, 20))
    b = write(tmp_path / "b.json", timed(1000, 5))
    r = CliRunner().invoke(main, ["compare", str(a), str(b), "--allow-different", "--json"])
    assert r.exit_code == ExitCode.PASS, r.output
    rows = json.loads(r.stdout)  # stdout: the rows, nothing else
    count = next(x for x in rows if x["metric"] == "send_delay" and x["stat"] == "count")
    assert count["kind"] == "per_s" and count["verdict"] == OK
    assert r.stderr.startswith("warning: comparing runs of different scenarios")
    assert "load.duration: baseline 20s, current 5s" in r.stderr


def test_the_table_is_not_wrapped_when_stdout_is_no_terminal(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", timed(4000, 20))
    b = write(tmp_path / "b.json", timed(1000, 5))
    r = CliRunner().invoke(main, ["compare", str(a), str(b), "--allow-different", "--all"])
    assert r.exit_code == ExitCode.PASS, r.output
    lines = [line.rstrip() for line in r.stdout.splitlines()]
    count = next(line for line in lines if "send_delay" in line and " count " in line)
    mark = count.split()[-1]  # the note's footnote
    assert "200/s" in count and f"{mark} per second: 4000 in 20s vs 1000 in 5s" in lines
    assert max(len(line) for line in lines) > 80  # its own width, not a terminal's 80
    for line in lines:  # each row on one line: its metric, its values and its verdict
        if line.split()[:1] in (["send_delay"], ["stage.mail"], ["availability"], ["counts"]):
            cells = [c.strip() for c in line.split("│")]
            assert {"ok", "better", "worse-within-noise", "REGRESSED"} & set(cells), line


def test_gate_refuses_or_warns_after_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = write(tmp_path / "base.json", timed(4000, 20))
    doc = timed(1000, 5)
    with pytest.raises(NotComparableError):
        gate(doc, base)
    rows, bad = gate(doc, base, allow_different=True)
    assert not bad and row(rows, "send_delay.count").kind == "per_s"
    run = RunResult(doc, tmp_path / "run" / "result.json", Verdict(()), "completed", None,
                    ExitCode.PASS)  # fmt: skip
    junit = tmp_path / "j.xml"
    refused = finish(Console(), run, GateOptions(base, Tolerances(), junit), as_json=True)
    assert refused == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"error: {base} and {run.path} are not comparable" in err
    assert "load.duration: baseline 20s, current 5s" in err
    case = next(c for c in ET.parse(junit).getroot().iter("testcase")
                if c.get("name") == "comparable scenario")  # fmt: skip
    assert case.find("failure") is not None
    opts = GateOptions(base, Tolerances(), None, allow_different=True)
    assert finish(Console(), run, opts, as_json=True) == ExitCode.PASS
    out = capsys.readouterr()
    assert out.out == "" and "warning: comparing runs of different scenarios" in out.err
    assert "Baseline comparison" in out.err


def test_prepare_refuses_a_baseline_of_another_scenario_before_the_run() -> None:
    sc = load_scenario(str(ROOT / "scenarios" / "quickstart.toml"), ('load.duration="2s"',))
    with pytest.raises(NotComparableError) as exc:
        prepare(BASELINE, (), None, scenario=sc, source="quickstart.toml")
    assert exc.value.lines()[1] == "load.duration: baseline 20s, current 2s"
    opts = prepare(BASELINE, (), None, scenario=sc, allow_different=True)
    assert opts.allow_different
    same = load_scenario(str(ROOT / "scenarios" / "quickstart.toml"), ())
    assert not prepare(BASELINE, (), None, scenario=same).allow_different


def test_junit_and_step_summary_say_what_differs() -> None:
    base, cur = timed(4000, 20), timed(1000, 5)
    diffs = differences(base, cur)
    rows = compare(base, cur)
    suite = junit_tree(cur, rows, diffs).getroot()
    case = next(c for c in suite.iter("testcase") if c.get("name") == "comparable scenario")
    assert case.find("failure") is None
    out = case.find("system-out")
    assert out is not None and "load.duration: baseline 20s, current 5s" in str(out.text)
    text = markdown(cur, rows, diffs)
    assert "- `load.duration`: baseline 20s, current 5s" in text
    assert "compared anyway (`--allow-different`)" in text
    assert "not compared" in markdown(cur, None, diffs)
