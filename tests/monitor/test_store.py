from pathlib import Path

from bench.monitor.status import month_to_date
from bench.monitor.store import NS, Probe, Store

T0 = 1_780_000_000 * NS  # 2026-05-28, well inside a month
W = 0.01  # a 10 ms window stands for an SLA minute


def _probe(i: int, user: int, t: int) -> Probe:
    return Probe(f"p{i}", "send", user, t, t + 5 * round(W * NS))


def test_round_trip_resume_and_no_double_count(tmp_path: Path) -> None:
    db = tmp_path / "m.sqlite"
    s = Store(db, window_s=W)
    win = round(W * NS)
    for i in range(4):
        s.add_probe(_probe(i, i, T0 + i * win))
    s.sent("p0", 2_000_000)
    assert s.arrived("p0", 30_000_000, T0 + win, late_ns=60 * NS)
    s.failed("p1", "rcpt", False, T0 + win)
    s.close()  # as if the monitor had stopped with p2, p3 in flight

    s = Store(db, window_s=999.0)  # the stored window wins
    assert s.window_ns == win
    assert [p.id for p in s.inflight()] == ["p2", "p3"]
    assert s.arrived("p2", 40_000_000, T0 + 3 * win, late_ns=60 * NS)
    assert not s.arrived("p2", 40_000_000, T0 + 3 * win, late_ns=60 * NS)  # duplicate
    assert not s.arrived("nope", 1, T0, late_ns=1)
    assert s.expire(T0 + 100 * win) == 1  # p3 lost by its deadline
    st = month_to_date(s, T0 + 4 * win)
    assert st["counts"] == {"send.delivered": 2, "send.failed": 1, "send.lost": 1}
    assert st["failed_by_stage"] == {"send.rcpt": 1}
    assert st["inflight"] == 0
    assert st["windows"] == 4 and st["fault_windows"] == 2
    assert st["metrics"]["send_delay"]["count"] == 2
    assert abs(st["metrics"]["send_delay"]["mean"] - 0.035) < 0.001
    assert st["budget"]["fault_min"] == 2
    assert st["verdict"] == "fail"  # lost mail fails the max check, faults the rate
    assert st["budget"]["burn_rate"] > 1
