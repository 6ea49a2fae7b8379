import json
import re
import urllib.request
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from bench.monitor.exporter import serve
from bench.monitor.status import month_to_date
from bench.monitor.store import FINAL, NS, Probe, Store

T0 = 1_780_000_000 * NS
W = 0.01


def test_scrape_equals_status(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    s = Store(db, window_s=W)
    win = round(W * NS)
    for i in range(6):
        s.add_probe(Probe(f"p{i}", "send", i % 3, T0 + i * win, T0 + (i + 9) * win))
    for i in range(4):
        s.arrived(f"p{i}", (i + 1) * 700_000_000, T0 + (i + 1) * win, late_ns=60 * NS)
    s.failed("p4", "connect", True, T0 + 5 * win)
    now = T0 + 6 * win
    status = month_to_date(s, now)
    server = serve(db, "127.0.0.1", 0, clock=lambda: now)
    try:
        url = f"http://127.0.0.1:{server.server_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            text = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    samples = {
        (x.name, tuple(sorted(x.labels.items()))): x.value
        for fam in text_string_to_metric_families(text)
        for x in fam.samples
    }
    assert samples[("mailsla_probes_total", (("direction", "send"), ("outcome", "delivered")))] == 4
    assert samples[("mailsla_probes_total", (("direction", "send"), ("outcome", "failed")))] == 1
    stage = (("direction", "send"), ("stage", "connect"))
    assert samples[("mailsla_probe_failures_total", stage)] == 1
    assert samples[("mailsla_probes_inflight", ())] == status["inflight"] == 1
    b = status["budget"]
    assert samples[("mailsla_month_fault_minutes", ())] == b["fault_min"] > 0
    assert samples[("mailsla_month_burn_rate", ())] == b["burn_rate"]
    assert samples[("mailsla_month_budget_spent_ratio", ())] == b["budget_spent_share"]
    assert samples[("mailsla_sla_pass", ())] == (status["verdict"] == "pass")
    m = status["metrics"]["send_delay"]
    assert samples[("mailsla_send_delay_seconds_count", ())] == m["count"] == 4
    assert samples[("mailsla_send_delay_seconds_bucket", (("le", "1.0"),))] == 1
    assert samples[("mailsla_send_delay_seconds_bucket", (("le", "2.5"),))] == 3
    assert abs(samples[("mailsla_send_delay_seconds_sum", ())] - 7.0) < 0.01
    assert samples[("mailsla_month_send_delay_mean_seconds", ())] == m["mean"]
    for c in status["checks"]:  # each clause and threshold, as status judged it
        key = ("mailsla_sla_check_pass", (("check", c["name"]), ("source", c["source"])))
        assert samples[key] == float(c["pass"])


DOCS = Path(__file__).parents[2] / "docs" / "monitor"
NAME = re.compile(r"\b(mailsla(?::[a-z0-9_]+)+|mailsla_[a-z0-9_]+)\b")


def _scraped_names(tmp_path: Path) -> dict[str, set[str]]:
    """Every sample name a scrape of a month with each outcome and both delays gives, with
    the label names it carries."""
    db = tmp_path / "all.sqlite"
    s = Store(db, window_s=W)
    win = round(W * NS)
    for i, d in enumerate(("send", "receive", "send", "send", "send")):
        s.add_probe(Probe(f"p{i}", d, 0, T0 + i * win, T0 + (i + 2) * win))
    s.sent("p0", 1000)
    s.arrived("p0", NS, T0 + win, late_ns=60 * NS)
    s.arrived("p1", NS, T0 + win, late_ns=60 * NS)
    s.arrived("p2", 90 * NS, T0 + win, late_ns=60 * NS)
    s.failed("p3", "rcpt", False, T0 + win)
    s.expire(T0 + 100 * win)
    server = serve(db, "127.0.0.1", 0, clock=lambda: T0 + 100 * win)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics") as r:
            text = r.read().decode()
    finally:
        server.shutdown()
        server.server_close()
    out: dict[str, set[str]] = {}
    for fam in text_string_to_metric_families(text):
        for x in fam.samples:
            out.setdefault(x.name, set()).update(x.labels)
    return out


def test_alert_rules_and_dashboard_use_only_metrics_the_exporter_serves(tmp_path: Path) -> None:
    served = _scraped_names(tmp_path)
    rules = yaml.safe_load((DOCS / "alerts.yml").read_text())
    recorded = {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]]
    board = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs += [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    used = {n for e in exprs for n in NAME.findall(e)}
    assert used, "no mailsla metric found in the docs"
    unknown = {n for n in used if n not in served and n not in recorded}
    assert not unknown, f"{sorted(unknown)} are not served by the exporter (has {sorted(served)})"
    # label matchers name labels the series carry, and outcomes the store can give
    for e in exprs:
        for name, label, values in re.findall(r"(mailsla_\w+)\{(\w+)=~?\"([^\"]*)\"", e):
            assert label in served[name], (name, label)
            if label == "outcome":
                assert set(values.split("|")) <= set(FINAL), values
    # every recorded series used is recorded
    assert {n for n in used if ":" in n} <= recorded
