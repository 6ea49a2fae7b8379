import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from bench.monitor.exporter import serve
from bench.monitor.status import month_to_date
from bench.monitor.store import NS, Probe, Store

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
