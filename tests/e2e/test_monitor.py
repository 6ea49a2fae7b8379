"""The monitor against a fake MTA (a ``mailsla fakemta`` process) with an outage: one monitor
runs through it uninterrupted, another is SIGKILLed mid-outage and restarted on its database.
Both months must show the outage, and every probe of the killed one is accounted for exactly
once. A window is 0.25 s here (a scaled SLA minute), so the outage spans several windows."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import pytest

from bench.harness.dovecot import ThrowawayDovecot
from bench.monitor.store import Store
from bench.observe.maildir_watch import make_maildir
from tests.conftest import need_binary

pytestmark = pytest.mark.slow
CMD = [sys.executable, "-m", "bench"]
# The outage, counted from each fake MTA's start: late enough that both monitors are probing
# before it begins even on a loaded machine (each is a Python start-up of a second or two).
OUTAGE_AT, OUTAGE_FOR = 9.0, 2.5
OUTAGE = f"{OUTAGE_AT}s:{OUTAGE_FOR}s:refuse"


def _line(stream: IO[str], prefix: str, timeout: float = 20.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = stream.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line
    raise AssertionError(f"no line starting {prefix!r}")


def _fakemta(
    root: Path, outage: str = OUTAGE, *args: str
) -> tuple[subprocess.Popen[str], int, int]:
    """A ``mailsla fakemta`` delivering into Maildirs under *root*; its submission and inbound
    ports."""
    root.mkdir(exist_ok=True)
    p = subprocess.Popen(
        [
            *CMD,
            "fakemta",
            "--relay-to",
            "127.0.0.1:9",
            "--mailbox-root",
            str(root),
            "--users",
            "3",
            "--processing-delay",
            "const(20ms)",
            "--delivery-delay",
            "const(700ms)",
            *(["--outage", outage] if outage else []),
            *args,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert p.stdout is not None
    ready = json.loads(_line(p.stdout, "{"))
    return p, int(ready["submit"].rsplit(":", 1)[1]), int(ready["inbound"].rsplit(":", 1)[1])


def _scenario(tmp: Path, name: str, port: int, root: Path, extra: str = "") -> Path:
    sc = tmp / f"{name}.toml"
    sc.write_text(  # no [postoffice]: probes go to the users' own mailboxes (mailbox.domain)
        f'name = "{name}"\n[system]\nkind = "smtp"\nsubmit = "127.0.0.1:{port}"\n{extra}'
        f'[mailbox]\nmaildir = "{root}"\n[message]\nusers = 3\n'
        f'[monitor]\nrate = 600\nwindow = "250ms"\ndeadline = "3s"\nlate = "500ms"\n'
        f'listen = "127.0.0.1:0"\npoll_interval = "20ms"\ndatabase = "{tmp / name}.sqlite"\n'
    )
    return sc


def _monitor(sc: Path, *args: str) -> subprocess.Popen[str]:
    p = subprocess.Popen([*CMD, "monitor", str(sc), *args], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    _line(p.stdout, "{")
    return p


def _status(db: Path) -> dict[str, Any]:
    out = subprocess.run(
        [*CMD, "monitor", "status", str(db), "--json"], capture_output=True, text=True, check=False
    )
    st: dict[str, Any] = json.loads(out.stdout)
    assert out.returncode == (0 if st["verdict"] == "pass" else 1), out.stderr
    return st


def _wait_seen(db: Path, n: int, direction: str = "%", timeout: float = 30.0) -> None:
    """Until *n* probes (of *direction*) were seen, delivered or late; bounded by *timeout*."""
    with Store(db) as s:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            seen = s.db.execute(
                "SELECT count(*) FROM probes WHERE direction LIKE ? AND state IN (?, ?)",
                (direction, "delivered", "late"),
            ).fetchone()[0]
            if seen >= n:
                return
            time.sleep(0.1)


def test_sigkill_mid_outage_resumes_the_month(tmp_path: Path) -> None:
    mta_a, port_a, _ = _fakemta(tmp_path / "mail_a")
    mta_b, port_b, _ = _fakemta(tmp_path / "mail_b")
    t0 = time.monotonic()  # b's outage clock started just before it said it was ready
    try:
        a = _monitor(_scenario(tmp_path, "a", port_a, tmp_path / "mail_a"))
        b = _monitor(_scenario(tmp_path, "b", port_b, tmp_path / "mail_b"))
        up = time.monotonic() - t0
        assert up < OUTAGE_AT - 0.5, f"the monitors took {up:.1f} s to start: past the outage"
        # mid-outage, while the probes accepted just before it (700 ms to delivery) travel
        time.sleep(max(0.0, OUTAGE_AT + 0.3 - (time.monotonic() - t0)))
        os.kill(b.pid, signal.SIGKILL)
        killed = time.monotonic()
        b.wait(10)
        with Store(tmp_path / "b.sqlite") as s:
            at_kill = {p.id for p in s.inflight()}
        b = _monitor(_scenario(tmp_path, "b", port_b, tmp_path / "mail_b"))
        down = math.ceil((time.monotonic() - killed) / 0.25)  # windows b planned no probe in
        time.sleep(max(0.0, OUTAGE_AT + OUTAGE_FOR + 2.5 - (time.monotonic() - t0)))
        for p in (a, b):
            p.send_signal(signal.SIGTERM)
        assert a.wait(20) == 0 and b.wait(20) == 0
    finally:
        for p in (mta_a, mta_b):
            p.terminate()
            p.wait(10)
    time.sleep(3.1)  # past every deadline: a status now has no probe in flight unaccounted
    with Store(tmp_path / "b.sqlite") as s:
        s.expire(time.time_ns())
        states = dict(s.db.execute("SELECT id, state FROM probes").fetchall())
    with Store(tmp_path / "a.sqlite") as s:
        s.expire(time.time_ns())
    sa, sb = _status(tmp_path / "a.sqlite"), _status(tmp_path / "b.sqlite")
    for st in (sa, sb):
        total = sum(st["counts"].values())
        assert st["inflight"] == 0
        delivered = st["counts"].get("send.delivered", 0) + st["counts"].get("send.late", 0)
        assert st["metrics"]["send_delay"]["count"] == delivered  # one histogram entry each
        assert st["counts"].get("send.failed", 0) >= 5  # the outage refused probes
        assert st["failed_by_stage"].get("send.connect", 0) == st["counts"]["send.failed"]
        assert st["fault_windows"] >= 4  # 2.5 s of outage = 10 windows of 0.25 s
        assert st["verdict"] == "fail"  # an outage of ten SLA minutes in a month of a few
        # the outage is kept as one run of fault windows (or a few: edges may be partial)
        big = max(st["outages"], key=lambda o: o["windows"])
        assert big["windows"] >= 4 and big["failed"] >= 5
        assert sum(o["windows"] for o in st["outages"]) == st["fault_windows"]
        assert delivered >= 10 and total >= 30
    # The killed monitor's probes in flight at the kill (accepted, 700 ms from delivery) were
    # resolved by the restarted one when they arrived, once each.
    assert at_kill and all(states[i] in ("delivered", "late") for i in at_kill)
    # Its month equals the uninterrupted one's: same outage windows, within a window per edge
    # and the windows the restart missed (no probe is planned while it is down).
    assert abs(sa["fault_windows"] - sb["fault_windows"]) <= 2 + down
    # (its ready line comes before its probe schedule resumes, so allow twice the down time)
    assert sb["windows"] >= sa["windows"] - 2 - 2 * down


def test_both_directions_probe_submission_and_inbound(tmp_path: Path) -> None:
    """With ``load.direction = "both"`` a quarter of the probes come in at the inbound port;
    each direction has its own fates and delay histogram, and every probe one fate."""
    mta, port, inbound = _fakemta(tmp_path / "mail", outage="")
    make_maildir(tmp_path / "mail" / "user1")
    foreign = tmp_path / "mail" / "user1" / "new" / "1.foreign.host"
    foreign.write_bytes(b"Subject: not ours\r\n\r\nhello\r\n")
    try:
        extra = (
            f'inbound = "127.0.0.1:{inbound}"\n[load]\ndirection = "both"\nreceive_share = 0.25\n'
        )
        mon = _monitor(_scenario(tmp_path, "both", port, tmp_path / "mail", extra))
        _wait_seen(tmp_path / "both.sqlite", 8, "receive")  # late: after 500 ms, 700 ms here
        mon.send_signal(signal.SIGTERM)
        assert mon.wait(20) == 0
    finally:
        mta.terminate()
        mta.wait(10)
    st = _status(tmp_path / "both.sqlite")
    assert foreign.exists()  # the watcher deletes ours once seen, never what is not ours
    ours = [f for u in range(3) for f in (tmp_path / "mail" / f"user{u}" / "new").iterdir()]
    c = st["counts"]
    seen = {d: c.get(f"{d}.delivered", 0) + c.get(f"{d}.late", 0) for d in ("send", "receive")}
    assert seen["receive"] >= 8 and seen["send"] >= 8, c
    assert not any(k.endswith((".failed", ".lost")) for k in c), c
    sent = {d: sum(n for k, n in c.items() if k.startswith(d + ".")) for d in ("send", "receive")}
    assert sent["receive"] * 4 in range(sum(sent.values()) - 4, sum(sent.values()) + 5)
    m = st["metrics"]
    assert m["receive_delay"]["count"] == seen["receive"]
    assert m["send_delay"]["count"] == seen["send"]
    assert m["inbound.submit_latency"]["count"] >= seen["receive"]
    assert m["receive_delay"]["mean"] >= 0.7  # the fake MTA's delivery delay
    # every probe has one state; those still travelling at the stop are the ones in flight
    assert {k.split(".")[1] for k in c} <= {"delivered", "late", "inflight"}, c
    assert st["inflight"] == sum(v for k, v in c.items() if k.endswith(".inflight"))
    assert len(ours) <= 1 + st["inflight"]  # the foreign one, and probes still travelling


@pytest.mark.realmta
def test_imap_watching_deletes_only_its_own_probes(tmp_path: Path) -> None:
    """``mailbox.watch = "imap"``: the run's IMAP watcher (a throwaway Dovecot over the fake
    MTA's Maildirs) resolves the probes and deletes them once seen; a message not ours, in the
    same mailbox, is left where it was."""
    need_binary("dovecot")
    if os.geteuid() != 0:
        pytest.skip("a throwaway Dovecot instance needs root")
    root = Path(tempfile.mkdtemp(prefix="mailsla-monitor-imap-"))  # nobody must get in
    root.chmod(0o755)
    os.chown(root, 65534, 65534)
    for u in range(3):
        make_maildir(root / f"user{u}", owner=(65534, 65534), mode=0o777, root=root)
    foreign = root / "user0" / "new" / "1.foreign.host"
    foreign.write_bytes(b"From: someone@else.test\r\nSubject: not a probe\r\n\r\nhello\r\n")
    os.chmod(foreign, 0o666)
    mta, port, _ = _fakemta(root, "", "--mailbox-readable")
    dc = ThrowawayDovecot(root, password="mon1tor")
    try:
        dc.start()
        sc = _scenario(tmp_path, "imap", port, root)
        sc.write_text(
            sc.read_text().replace(
                "[mailbox]\n", f'[mailbox]\nwatch = "imap"\nimap = "127.0.0.1:{dc.port}"\n'
            )
        )
        env = {**os.environ, "MAILSLA_IMAP_PASSWORD": "mon1tor"}
        p = subprocess.Popen([*CMD, "monitor", str(sc)], stdout=subprocess.PIPE, text=True, env=env)
        assert p.stdout is not None
        _line(p.stdout, "{")
        _wait_seen(tmp_path / "imap.sqlite", 10)
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    finally:
        dc.stop()
        mta.terminate()
        mta.wait(10)
    st = _status(tmp_path / "imap.sqlite")
    seen = st["counts"].get("send.delivered", 0) + st["counts"].get("send.late", 0)
    assert seen >= 10 and st["metrics"]["send_delay"]["count"] == seen
    left = [
        f.read_bytes()
        for u in range(3)
        for sub in ("new", "cur")
        for f in (root / f"user{u}" / sub).iterdir()
    ]
    # the foreign message is kept (Dovecot may have moved it to cur/), never expunged; ours
    # are gone but for those still travelling at the stop
    assert sum(b"not a probe" in b for b in left) == 1
    assert len(left) <= 1 + st["counts"].get("send.inflight", 0), len(left)
    shutil.rmtree(root, ignore_errors=True)


def test_a_stop_against_a_silent_server_cancels_the_sends_in_progress(tmp_path: Path) -> None:
    """A server that accepts connections and never greets: on SIGTERM the sends still waiting
    (a 30 s command timeout, load.timeout) get a grace, then are cancelled. They end
    ``cancelled``, in no window (no evidence about the system), none left in flight."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=64)
    try:
        (tmp_path / "mail").mkdir()
        sc = _scenario(tmp_path, "silent", silent.getsockname()[1], tmp_path / "mail")
        mon = _monitor(sc, "--set", 'monitor.deadline="1h"')
        with Store(tmp_path / "silent.sqlite") as s:
            end = time.monotonic() + 20
            while time.monotonic() < end:  # bounded: until a few sends are waiting
                if s.db.execute("SELECT count(*) FROM probes").fetchone()[0] >= 3:
                    break
                time.sleep(0.05)
        mon.send_signal(signal.SIGTERM)
        assert mon.wait(20) == 0
    finally:
        silent.close()
    with Store(tmp_path / "silent.sqlite") as s:
        states = dict(s.db.execute("SELECT state, count(*) FROM probes GROUP BY 1").fetchall())
        requests = sum(w[4] for w in s.windows(0, 2**62))
    assert states.get("cancelled", 0) >= 3 and set(states) == {"cancelled"}, states
    assert requests == 0  # cancelled ones count in no window
