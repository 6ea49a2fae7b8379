"""JUnit XML of a run, for CI test reports: one test case per SLA check and threshold, one for
the accounting identity, one per stat compared with a baseline, one for whether the baseline's
scenario is comparable (a failure when the comparison was refused), and an error case when the
run did not complete."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.report.deltas import fmt_delta, fmt_value
from bench.report.terminal import fmt_check_value
from bench.verdict.comparable import Difference
from bench.verdict.compare import MISSING, REGRESSED, Row


def duration_s(doc: dict[str, Any]) -> float:
    """Seconds from the run's start to its end (0 when unknown)."""
    run = doc.get("run", {})
    try:
        start = datetime.fromisoformat(run["started_at"])
        end = datetime.fromisoformat(run["ended_at"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max((end - start).total_seconds(), 0.0)


def check_message(check: dict[str, Any]) -> str:
    """``observed 2.000s, not < limit 500ms`` (and the check's note)."""
    name = check["name"]
    obs, lim = (
        fmt_check_value(name, check["observed"]),
        fmt_check_value(name, check["limit"], limit=True),
    )
    text = f"observed {obs}, not {check['op']} limit {lim}"
    if check.get("state") == "not_shown":
        text = f"not shown: observed {obs}; {check['op']} {lim} is not supported by the sample"
    return f"{text} ({check['note']})" if check.get("note") else text


def _row_message(row: Row) -> str:
    delta, pct = fmt_delta(row)
    text = (
        f"baseline {fmt_value(row, row.baseline)}, current {fmt_value(row, row.current)} "
        f"({delta}, {pct}; tolerance {row.tolerance})"
    )
    return f"{text}: {row.note}" if row.note else text


def junit_tree(
    doc: dict[str, Any],
    rows: Sequence[Row] | None = None,
    differences: Sequence[Difference] = (),
) -> ET.ElementTree:
    """The JUnit document: ``<testsuites><testsuite name="mailsla NAME">…``. *differences*: how
    the baseline's scenario differs; without *rows* the comparison was refused for them."""
    run = doc.get("run", {})
    name = (run.get("scenario") or {}).get("name", "run")
    seconds = f"{duration_s(doc):.3f}"
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", name=f"mailsla {name}", time=seconds)
    if run.get("started_at"):
        suite.set("timestamp", str(run["started_at"]))
    tests = failures = errors = skipped = 0

    def case(case_name: str, classname: str) -> ET.Element:
        nonlocal tests
        tests += 1
        return ET.SubElement(suite, "testcase", name=case_name, classname=classname)

    if run.get("status", "completed") != "completed":
        tc = case("run", "mailsla.run")
        reason = str(run.get("reason") or run.get("status"))
        ET.SubElement(tc, "error", message=reason, type=str(run.get("status"))).text = reason
        errors += 1
    for check in doc.get("sla", {}).get("checks", []):
        tc = case(check["name"], f"mailsla.sla.{check.get('source', 'threshold')}")
        if not check["pass"]:
            msg = check_message(check)
            kind = "not_shown" if check.get("state") == "not_shown" else "sla"
            ET.SubElement(tc, "failure", message=msg, type=kind).text = msg
            failures += 1
    acc = doc.get("accounting")
    if acc is not None:
        tc = case("accounting identity", "mailsla.accounting")
        if not acc.get("holds"):
            c = doc.get("counts", {})
            keys = (
                "planned",
                "not_sent",
                "rejected",
                "failed",
                "delivered",
                "undelivered",
                "in_flight_at_stop",
            )
            msg = f"{acc.get('identity')} does not hold: " + ", ".join(
                f"{k} {c.get(k)}" for k in keys
            )
            ET.SubElement(tc, "failure", message=msg, type="accounting").text = msg
            failures += 1
    stopped = doc.get("counts", {}).get("in_flight_at_stop", 0)
    if stopped:  # neither delivered nor lost: not judged, and said apart
        tc = case("mail in flight at the stop", "mailsla.accounting")
        why = f"{stopped} accepted message(s) were still on their way when the run was stopped"
        ET.SubElement(tc, "skipped", message=why).text = why
        skipped += 1
    if differences:
        tc = case("comparable scenario", "mailsla.baseline")
        text = "; ".join(d.text for d in differences)
        if rows is None:
            msg = f"not compared: the scenarios differ: {text}"
            ET.SubElement(tc, "failure", message=msg, type="not-comparable").text = msg
            failures += 1
        else:
            out = f"compared anyway (--allow-different): {text}"
            ET.SubElement(tc, "system-out").text = out
    for row in rows or ():
        tc = case(row.name, "mailsla.baseline")
        msg = _row_message(row)
        if row.verdict == REGRESSED:
            ET.SubElement(tc, "failure", message=msg, type="regression").text = msg
            failures += 1
        elif row.verdict == MISSING:
            ET.SubElement(tc, "skipped", message=msg)
            skipped += 1
        else:
            ET.SubElement(tc, "system-out").text = f"{row.verdict}: {msg}"
    for el in (suites, suite):
        el.set("tests", str(tests))
        el.set("failures", str(failures))
        el.set("errors", str(errors))
    suite.set("skipped", str(skipped))
    suites.set("time", seconds)
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(
    path: Path,
    doc: dict[str, Any],
    rows: Sequence[Row] | None = None,
    differences: Sequence[Difference] = (),
) -> None:
    """Write the JUnit XML of *doc* (and the baseline *rows*, and how the baseline's scenario
    differs) to *path*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    junit_tree(doc, rows, differences).write(path, encoding="utf-8", xml_declaration=True)
