"""Where ``--ray-watcher`` puts the Maildir watcher, and when it refuses (pure, no cluster);
and each lane's share of the schedule as generator workers split it. The cluster runs are in
tests/procs/test_ray_inbound.py."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bench.config.scenario import from_dict
from bench.core import schedule
from bench.errors import UsageError
from bench.procs.child import lane_share
from bench.procs.ray_clocks import Node
from bench.procs.ray_watcher import check_watcher, watcher_node
from tests.e2e.test_run import mailsla

A = Node("a1b2c3d4e5f6" + "0" * 44, "10.0.0.5", 4)
B = Node("ffee00112233" + "0" * 44, "10.0.0.6", 2)
C = Node("c0ffee000000" + "0" * 44, "10.0.0.6", 2)


def sc(direction: str = "both", watch: str = "maildir") -> object:
    text = f'name = "w"\n[load]\ndirection = "{direction}"\nrate = 40\nduration = "2s"\n'
    text += f'receive_share = 0.3\n[mailbox]\nwatch = "{watch}"\n'
    return from_dict(tomllib.loads(text), "w.toml")


def test_the_driver_or_one_node_by_address_or_id() -> None:
    assert watcher_node([A, B], "driver") is None
    assert watcher_node([A, B], "10.0.0.5") == A
    assert watcher_node([A, B, C], "c0ffee") == C
    with pytest.raises(UsageError) as none:
        watcher_node([A, B], "10.0.0.9")
    assert "--ray-watcher 10.0.0.9: no node" in str(none.value)
    assert "10.0.0.6 (id ffee00112233)" in " ".join(none.value.args)
    with pytest.raises(UsageError) as two:
        watcher_node([A, B, C], "10.0.0.6")
    assert "2 nodes have that address" in str(two.value)
    with pytest.raises(UsageError):
        watcher_node([A, B], "each")  # one watcher: the node holding the Maildirs


def test_it_refuses_runs_with_nothing_to_watch_and_imap() -> None:
    check_watcher(sc(), "10.0.0.5")  # inbound, Maildir: fine
    check_watcher(sc("send"), "driver")  # the default asks nothing
    with pytest.raises(UsageError, match="sends no inbound mail"):
        check_watcher(sc("send"), "10.0.0.5")
    with pytest.raises(UsageError, match=r'mailbox\.watch is "imap"'):
        check_watcher(sc(watch="imap"), "10.0.0.5")


def test_each_lanes_share_splits_its_schedule_exactly() -> None:
    s = sc()
    load = s.load  # type: ignore[attr-defined]
    planned = list(enumerate(schedule.planned_offsets(load, s.seed)))  # type: ignore[attr-defined]
    for direction in ("send", "receive"):
        whole = list(schedule.lane(iter(planned), direction, "both", load.receive_share))
        for n in (1, 2, 3):
            shares = [list(lane_share(s, direction, k, n)) for k in range(n)]  # type: ignore[arg-type]
            assert sorted(x for share in shares for x in share) == whole
    inbound = [seq for seq, _ in schedule.lane(iter(planned), "receive", "both", 0.3)]
    assert len(inbound) == 24 and len(planned) == 80  # 30 % of 80 planned go inbound


def test_ray_watcher_without_ray_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('name = "w"\n[load]\ndirection = "receive"\n')
    p = mailsla("run", str(path), "--ray-watcher", "10.0.0.5", timeout=60)
    assert p.returncode == 2 and "--ray-watcher: add --ray ADDRESS" in p.stderr
