"""report.html: built from result.json (+ timeseries.csv), self-contained, and rendered by a
real headless Chromium whose DOM must hold every plot, drawn, with no NaN."""

from __future__ import annotations

import csv
import json
import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bench.cli.main import main
from bench.core.metrics import Metric
from bench.report.charts import TimeSeries, parse_timeseries, spectrum, thin
from bench.report.html import build_html, write_report
from tests.conftest import need_binary
from tests.e2e.test_run import QUICK, ROOT, mailsla, scenario

ARTIFACTS = ROOT / "results" / "test-artifacts"
DRAWN = {"path", "polyline", "rect", "circle"}
STATS = ("p50", "p99", "max")


def _metric(name: str, values_ns: list[int]) -> dict[str, Any]:
    m = Metric(name)
    for v in values_ns:
        m.record(v)
    return m.summary()


def synthetic_doc(reason: str | None = None) -> dict[str, Any]:
    """A result.json as a 3-minute run with a fault window and an outage would write it, with
    real HDR histograms."""
    rnd = random.Random(7)
    send = [int(rnd.lognormvariate(-3.5, 0.6) * 1e9) for _ in range(5000)]
    submit = [int(rnd.uniform(0.5e-3, 4e-3) * 1e9) for _ in range(5000)]
    metrics = {
        "send_delay": _metric("send_delay", send),
        "submit_latency": _metric("submit_latency", submit),
        "stage.mail": _metric("stage.mail", [int(rnd.expovariate(5000) * 1e9) for _ in range(50)]),
        "stage.starttls": _metric("stage.starttls", []),
    }
    sd = metrics["send_delay"]
    counts = dict.fromkeys(
        ("planned", "not_sent", "sent", "accepted", "rejected", "failed", "delivered"), 0
    )
    counts |= {"planned": 5600, "sent": 5600, "accepted": 5000, "failed": 600}
    counts |= {"delivered": 5000, "undelivered": 0, "foreign": 0, "duplicate": 0, "late": 3}
    counts["failed_then_delivered"] = 0
    window = {"active_users": 100, "disconnected_users": 0, "connectivity_fault": False}
    return {
        "schema": "mailsla.result/1",
        "run": {
            "id": "20260101T000000Z-synthetic",
            "scenario": {"name": "synthetic", "load": {"model": "constant", "rate": 31.0}},
            "scenario_file": "scenarios/<synthetic>.toml",
            "overrides": ["load.rate=31"],
            "seed": 1,
            "started_at": "2026-01-01T00:00:00+00:00",
            "ended_at": "2026-01-01T00:03:05+00:00",
            "status": "completed" if reason is None else "interrupted",
            "reason": reason,
            "system": {"kind": "fakemta", "tls": "off"},
            "versions": {"mailsla": "0.1.0"},
        },
        "counts": counts,
        "accounting": {"identity": "planned = …", "holds": True},
        "directions": {"send": {"counts": counts, "identity_holds": True, "target": "x"}},
        "outcomes": {
            "rejected": [],
            "failed": [
                {
                    "stage": "connect",
                    "error": "refused",
                    "class": "connection",
                    "count": 600,
                    "direction": "send",
                }
            ],
            "by_class": {"connection": 600},
        },
        "metrics": metrics,
        "sla": {
            "verdict": "fail",
            "checks": [
                {
                    "name": "send_delay.mean",
                    "op": "<=",
                    "limit": 60.0,
                    "observed": sd["mean_s"],
                    "pass": True,
                    "source": "exmail",
                },
                {
                    "name": "send_delay.max",
                    "op": "<=",
                    "limit": 3600.0,
                    "observed": sd["max_s"],
                    "pass": True,
                    "source": "exmail",
                },
                {
                    "name": "send_delay.p99",
                    "op": "<",
                    "limit": 0.05,
                    "observed": sd["percentiles_s"]["99"],
                    "pass": False,
                    "source": "threshold",
                },
                {
                    "name": "send_delay.count",
                    "op": ">=",
                    "limit": 10.0,
                    "observed": 5000.0,
                    "pass": True,
                    "source": "threshold",
                },
                {
                    "name": "availability.no_fault_rate",
                    "op": ">=",
                    "limit": 0.999,
                    "observed": 2 / 3,
                    "pass": False,
                    "source": "exmail",
                },
            ],
        },
        "availability": {
            "window_s": 60.0,
            "windows": 3,
            "fault_windows": 1,
            "connectivity_fault_windows": 1,
            "no_fault_rate": 2 / 3,
            "connectivity_rate": 2 / 3,
            "month": {
                "budget_min": 43.2,
                "fault_min": 14400.0,
                "fault_budget_share": 333.3,
                "disconnected_min": 14400.0,
                "disconnected_budget_share": 333.3,
            },
            "outages": [
                {
                    "begin_s": 60.0,
                    "end_s": 72.0,
                    "attempts": 372,
                    "failed": 372,
                    "connection_failed": 372,
                    "kind": "connection",
                }
            ],
            "accepted_then_lost": 0,
            "by_window": [
                window | {"start_s": 0.0, "affected_users": 0, "fault": False},
                window
                | {
                    "start_s": 60.0,
                    "affected_users": 100,
                    "fault": True,
                    "disconnected_users": 100,
                    "connectivity_fault": True,
                },
                window | {"start_s": 120.0, "affected_users": 0, "fault": False},
            ],
        },
    }


def synthetic_csv() -> str:
    """A timeseries.csv: cumulative counts a second, latency columns, blanks in the outage."""
    head = ["t_s", "planned", "sent", "accepted", "delivered", "failed", "rejected"]
    head += [f"{m}.{s}_s" for m in ("send_delay", "submit_latency", "stage.auth") for s in STATS]
    rows = [",".join(head)]
    acc = fail = 0
    for t in range(1, 181):
        out = 60 < t <= 72
        acc, fail = acc + (0 if out else 31), fail + (31 if out else 0)
        lat = ",,," if out else "0.025,0.08,0.11,"
        rows.append(f"{t},{31 * t},{31 * t},{acc},{acc},{fail},0,{lat}0.001,0.003,nan,,,")
    return "\n".join(rows) + "\n"


def run_dir(tmp_path: Path, with_csv: bool = True, reason: str | None = None) -> Path:
    d = tmp_path / "run"
    d.mkdir()
    (d / "result.json").write_text(json.dumps(synthetic_doc(reason)))
    if with_csv:
        (d / "timeseries.csv").write_text(synthetic_csv())
    return d


def expected_plots(d: Path) -> set[str]:
    """The data-plot ids report.html must hold for run folder *d*."""
    doc = json.loads((d / "result.json").read_text())
    ids = {f"spectrum-{n}" for n, m in doc["metrics"].items() if m["count"]}
    ids |= {"availability", "rates"}
    csv_path = d / "timeseries.csv"
    if not csv_path.exists():
        return ids | {"latency"}
    with csv_path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return ids | {
        "latency-" + c.rsplit(".", 1)[0]
        for c in rows[0]
        if any(c.endswith(f".{s}_s") for s in STATS) and any(r[c] for r in rows)
    }


class Svgs(HTMLParser):
    """Each ``<svg data-plot>``: its title and the drawing elements inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.plots: dict[str, dict[str, Any]] = {}
        self._cur: dict[str, Any] | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "svg":
            assert a.get("data-plot"), "an <svg> without data-plot"
            self._cur = self.plots.setdefault(
                str(a["data-plot"]), {"title": "", "drawn": set(), "text": ""}
            )
        elif self._cur is not None:
            if tag in DRAWN:
                self._cur["drawn"].add(tag)
            self._in_title = tag == "title" and not self._cur["title"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._cur = None
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._cur is not None:
            self._cur["text"] += data
            if self._in_title:
                self._cur["title"] += data


def check_page(html: str, expected: set[str]) -> dict[str, dict[str, Any]]:
    """Every expected plot, titled and drawn; nothing fetched; no NaN."""
    assert not re.search(r"\bnan\b", html, re.IGNORECASE)
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", html)
    assert "<script" not in html.lower() and "@import" not in html
    p = Svgs()
    p.feed(html)
    assert set(p.plots) == expected
    for pid, plot in p.plots.items():
        assert plot["title"].strip(), pid
        assert plot["drawn"], f"{pid} draws nothing"
        placeholder = "no time series recorded" in plot["text"]
        if pid.startswith("spectrum-") or (pid == "rates" and not placeholder):
            assert "path" in plot["drawn"], f"{pid} has no line"
        if pid.startswith("latency-"):  # a stage timed once per connection: maybe one point
            assert plot["drawn"] & {"path", "circle"}, f"{pid} has no values"
    return p.plots


def test_spectrum_follows_the_histogram_and_ends_at_the_exact_max() -> None:
    rnd = random.Random(1)
    m = Metric("send_delay")
    for _ in range(20_000):
        m.record(int(rnd.uniform(1e-3, 1.0) * 1e9))
    pts = spectrum(m.summary())
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    assert xs == sorted(xs) and ys == sorted(ys)
    assert pts[0][0] == 1 and pts[-1] == (20_000.0, m.max_ns / 1e9)
    at = dict(pts)
    for x, q in ((10.0, 90.0), (100.0, 99.0), (1000.0, 99.9)):
        near = min(at, key=lambda k, x=x: abs(k - x))
        assert abs(near - x) < 1e-6 * x
        p = m.percentile_s(q)
        assert p is not None and at[near] == pytest.approx(p, rel=2e-3)
    assert spectrum(Metric("x").summary()) == []


def test_timeseries_tolerates_blanks_and_nan() -> None:
    ts = parse_timeseries(["t_s,sent,a.p50_s\n", "1,10,0.5\n", "2,,nan\n", "x,1,1\n"])
    assert ts is not None and ts.t == [1.0, 2.0]
    assert ts.columns == {"sent": [10.0, None], "a.p50_s": [0.5, None]}
    assert parse_timeseries(["sent\n", "1\n"]) is None


def test_long_time_series_are_merged_keeping_counts_and_peaks() -> None:
    n = 2500
    lat: list[float | None] = [0.001] * n
    lat[1001] = 2.0
    ts = TimeSeries(
        [float(i + 1) for i in range(n)],
        {"sent": [10.0 * (i + 1) for i in range(n)], "a.max_s": lat},
    )
    short, k = thin(ts)
    assert k == 3 and len(short.t) == 834 and short.t[-1] == n
    assert short.columns["sent"][-1] == 10.0 * n and short.columns["sent"][0] == 30.0
    assert max(v for v in short.columns["a.max_s"] if v is not None) == 2.0
    assert thin(short)[1] == 1


def test_report_holds_every_plot_and_table(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    path = write_report(d)
    assert path == d / "report.html"
    html = path.read_text()
    plots = check_page(html, expected_plots(d))
    assert "send_delay.p99 &lt; 50ms FAILED" in html  # the failed threshold, on its spectrum
    assert "SLA mean ≤ 1m" in plots["spectrum-send_delay"]["text"]
    assert "SLA max ≤ 1h" in plots["spectrum-send_delay"]["text"]
    assert "SLA" not in plots["spectrum-submit_latency"]["text"]
    assert "No values in any interval: stage.auth." in html
    assert "scenarios/&lt;synthetic&gt;.toml" in html  # escaped
    for text in (
        "SLA checks",
        "Messages",
        "Not accepted",
        "refused",
        "Percentile spectrum",
        "66.667 %",
        "outage",
        "fault",
    ):
        assert text in html, text


def test_without_timeseries_the_time_plots_say_so(tmp_path: Path) -> None:
    d = run_dir(tmp_path, with_csv=False, reason="<b>interrupted</b> & stopped")
    html = write_report(d).read_text()
    check_page(html, expected_plots(d))
    assert html.count("no time series recorded") >= 2
    assert "&lt;b&gt;interrupted&lt;/b&gt; &amp; stopped" in html
    assert "<b>interrupted" not in html


def test_page_without_availability_or_latency_values() -> None:
    doc = synthetic_doc()
    del doc["availability"]
    for m in doc["metrics"].values():
        m.update(count=0, hdr=None)
    html = build_html(doc, None)
    check_page(html, {"availability", "rates", "latency"})
    assert "no availability recorded" in html and "no latency values recorded" in html


def test_report_command_rebuilds_the_page_and_prints_the_tables(tmp_path: Path) -> None:
    d = run_dir(tmp_path)
    r = CliRunner().invoke(main, ["report", str(d)])
    assert r.exit_code == 0, r.output
    assert "SLA checks" in r.output and "send_delay.p99" in r.output
    assert f"report: {d / 'report.html'}" in r.output
    assert (d / "report.html").stat().st_size > 10_000
    (d / "result.json").unlink()
    r = CliRunner().invoke(main, ["report", str(d)])
    assert r.exit_code == 2 and "no result.json" in r.output


def chromium(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    exe = need_binary("chromium")
    profile = tmp_path / "chromium-profile"
    cmd = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120, check=False)


def render_and_check(d: Path, tmp_path: Path, artefact: str) -> None:
    """Open report.html in headless Chromium: the DOM holds every plot, drawn, without NaN;
    the screenshot is kept under results/test-artifacts/."""
    url = write_report(d).resolve().as_uri()
    dom = chromium(["--dump-dom", url], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<svg" in dom.stdout, dom.stderr[-2000:]
    check_page(dom.stdout, expected_plots(d))
    png = tmp_path / "report.png"
    shot = chromium([f"--screenshot={png}", "--window-size=1400,3000", url], tmp_path)
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(data[16:20], "big") == 1400  # IHDR width
    assert len(data) > 10_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(png, ARTIFACTS / artefact)


@pytest.mark.slow
def test_chromium_renders_a_synthetic_report(tmp_path: Path) -> None:
    render_and_check(run_dir(tmp_path), tmp_path, "report-synthetic.png")


@pytest.mark.slow
def test_chromium_renders_the_report_of_a_real_run(tmp_path: Path) -> None:
    need_binary("chromium")
    out = tmp_path / "out"
    p = mailsla("run", str(scenario(tmp_path, QUICK)), "--no-live", "--out", str(out))
    assert p.returncode == 0, p.stderr
    render_and_check(out, tmp_path, "report.png")
