"""The month to date judged like a run: kept settings, thresholds (whole-month and windowed), the
stored outage list, and ``monitor status``'s exit code."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bench.cli.main import main
from bench.config.thresholds import parse_threshold
from bench.monitor.status import keep_settings, month_to_date
from bench.monitor.store import NS, Probe, Store

T0 = 1_780_000_020 * NS  # 2026-05-28, inside a month; a whole number of 10 ms windows
W = 0.01
WIN = round(W * NS)


def _month(db: Path) -> Store:
    """20 windows of 3 users: probes delivered in 0.5 s, except windows 5–7 (an outage: every
    probe refused) and window 15 (one user's probe lost: 1 of 3 affected, a fault too)."""
    s = Store(db, window_s=W)
    n = 0
    for w in range(20):
        for u in range(3):
            t = T0 + w * WIN
            s.add_probe(Probe(str(n), "send", u, t, t + 50 * WIN))
            if 5 <= w <= 7:
                s.failed(str(n), "connect", True, t)
            elif not (w == 15 and u == 0):
                delay = (4 if w == 12 else 0.5) * NS  # window 12: slow, 4 s
                s.arrived(str(n), round(delay), t + 1, late_ns=60 * NS)
            n += 1
    s.expire(T0 + 100 * WIN)  # the probe of window 15 is lost by its deadline
    return s


def test_outages_are_kept_as_runs_of_fault_windows(tmp_path: Path) -> None:
    with _month(tmp_path / "m.sqlite") as s:
        st = month_to_date(s, T0 + 20 * WIN)
        first = s.window_of(T0)
        kept = s.outages(0, 2**62)
    assert st["fault_windows"] == 4
    assert [(a - first, b - first, f, lost) for a, b, f, lost in kept] == [
        (5, 7, 9, 0),
        (15, 15, 0, 1),
    ]
    assert [(o["windows"], o["failed"], o["lost"]) for o in st["outages"]] == [(3, 9, 0), (1, 0, 1)]
    # refreshing again (as every scrape and status does) neither duplicates nor loses one
    with Store(tmp_path / "m.sqlite") as s:
        month_to_date(s, T0 + 20 * WIN)
        assert s.outages(0, 2**62) == kept


def test_thresholds_are_judged_whole_month_and_per_window(tmp_path: Path) -> None:
    with _month(tmp_path / "m.sqlite") as s:
        ok = parse_threshold("send_delay.p50 < 1s")
        window = parse_threshold("send_delay.max[50ms] < 2s")  # 5 windows: 12 is in one
        st = month_to_date(s, T0 + 20 * WIN, thresholds=(ok, window))
    checks = {c["name"]: c for c in st["checks"] if c["source"] == "threshold"}
    assert checks["send_delay.p50"]["pass"]
    wc = checks["send_delay.max[50ms]"]
    assert not wc["pass"] and 3.9 < wc["observed"] < 4.1
    assert "1 of 4 windows failed" in wc["note"]  # windows 0–4, 5–9, 10–14, 15–19


def test_status_uses_the_kept_settings_and_exits_1_on_a_failing_month(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    with Store(db, window_s=60.0) as s:
        keep_settings(s, "Europe/Berlin", 3, "exchange", (parse_threshold("send_delay.p99 < 1ms"),))
        s.add_probe(Probe("0", "send", 0, 1, 2))  # long past, lost: nothing this month
    r = CliRunner().invoke(main, ["monitor", "status", str(db), "--json"])
    assert r.exit_code == 1, r.output
    st = json.loads(r.output)
    assert st["profile"] == "exchange" and st["month"]["tz"] == "Europe/Berlin"
    assert st["month"]["start"][8:10] == "03"  # the boundary day
    assert st["thresholds"] == ["send_delay.p99 < 1ms"]
    r = CliRunner().invoke(main, ["monitor", "status", str(db), "--threshold", "nonsense"])
    assert r.exit_code == 2 and "--threshold" in r.output and "Traceback" not in r.output
