"""The throwaway filter stack: rspamd as the throwaway Postfix's milter, with ClamAV's clamd and
a locally built EICAR signature behind it. Real daemons, real SMTP on loopback."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from bench.errors import StartupError
from bench.harness.clamav import EICAR, ClamavError, ThrowawayClamd, scan_bytes, signatures
from bench.harness.filters import ThrowawayFilters
from bench.harness.postfix import ThrowawayPostfix
from bench.harness.rspamd import RspamdError, ThrowawayRspamd
from tests.conftest import free_port, need_binary
from tests.e2e.test_run import MAILSLA, ROOT

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def need_filters() -> None:
    for name in ("postfix", "rspamd", "clamd"):
        need_binary(name)
    if os.geteuid() != 0:
        pytest.skip("throwaway Postfix and rspamd need root")


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[ThrowawayFilters, ThrowawayPostfix]]:
    need_filters()
    with ThrowawayFilters() as filters:
        pf = ThrowawayPostfix(f"127.0.0.1:{free_port()}", users=3, milter=filters.milter)
        pf.start()
        try:
            yield filters, pf
        finally:
            pf.stop()


def message(body: str, *, attach: tuple[bytes, str, str] | None = None) -> tuple[str, bytes]:
    msg = EmailMessage()
    mid = f"<{time.time_ns()}.test@remote.test>"
    msg["From"] = "Alice Example <alice@remote.test>"
    msg["To"] = "user0@local.test"
    msg["Subject"] = "Figures for the third quarter"
    msg["Date"] = "Thu, 03 Dec 2026 10:00:00 +0000"
    msg["Message-ID"] = mid
    msg.set_content(body)
    if attach is not None:
        data, ctype, name = attach
        main, sub = ctype.split("/")
        msg.add_attachment(data, maintype=main, subtype=sub, filename=name)
    return mid, msg.as_bytes()


def send(pf: ThrowawayPostfix, data: bytes) -> tuple[int, str]:
    """One message over SMTP on loopback: the reply to its DATA (code, text)."""
    with smtplib.SMTP("127.0.0.1", pf.port, local_hostname="client.test", timeout=30) as s:
        s.mail("alice@remote.test")
        s.rcpt("user0@local.test")
        reply: bytes | str
        try:
            code, reply = s.data(data)
        except smtplib.SMTPDataError as exc:
            code, reply = exc.smtp_code, exc.smtp_error
    return code, reply.decode() if isinstance(reply, bytes) else reply


def delivered(pf: ThrowawayPostfix, mid: str, timeout: float = 20.0) -> Path | None:
    """The Maildir file holding *mid* once Postfix's virtual agent wrote it (None at timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in pf.maildir_root.glob("user0/new/*"):
            if mid.encode() in f.read_bytes():
                return f
        time.sleep(0.02)
    return None


def in_maildir(pf: ThrowawayPostfix, mid: str) -> bool:
    return any(mid.encode() in f.read_bytes() for f in pf.maildir_root.glob("*/*/*"))


@pytest.mark.realmta
def test_gtube_is_rejected_at_end_of_data(stack: tuple[ThrowawayFilters, ThrowawayPostfix]) -> None:
    filters, pf = stack
    mid, data = message(f"Hello,\n\n{GTUBE}\n\nRegards\n")
    code, text = send(pf, data)
    assert (code, text) == (554, "5.7.1 Gtube pattern")
    assert "milter-reject: END-OF-MESSAGE" in pf.log and "5.7.1 Gtube pattern" in pf.log
    assert "GTUBE" in filters.rspamd.log
    # rejected at end of DATA: it never reached the queue, so it can never be delivered
    assert not in_maildir(pf, mid)


@pytest.mark.realmta
def test_eicar_attachment_is_found_by_clamd_and_rejected(
    stack: tuple[ThrowawayFilters, ThrowawayPostfix],
) -> None:
    filters, pf = stack
    mid, data = message("The file you asked for.\n", attach=(EICAR, "application/zip", "tool.zip"))
    assert base64.b64encode(EICAR)[:40] in data.replace(b"\n", b"")  # sent base64-encoded
    code, text = send(pf, data)
    assert code == 554, text
    assert text.startswith("5.7.1 clamav: virus found: Mailsla.Eicar-Test-File"), text
    # clamd answers rspamd before it writes its log line: wait (bounded) for the line
    deadline = time.monotonic() + 10
    while " FOUND" not in filters.clamd.log and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Mailsla.Eicar-Test-File" in filters.clamd.log and " FOUND" in filters.clamd.log
    assert not in_maildir(pf, mid)


@pytest.mark.realmta
def test_business_mail_passes_both_filters_to_the_maildir(
    stack: tuple[ThrowawayFilters, ThrowawayPostfix],
) -> None:
    filters, pf = stack
    csv = b"region,quarter,revenue\nnorth,Q3,120400\nsouth,Q3,98150\n"
    body = (
        "Dear Bob,\n\nplease find attached the revenue figures for the third quarter, as we "
        "agreed on Monday. Let me know if anything is unclear.\n\nKind regards,\nAlice\n"
    )
    mid, data = message(body, attach=(csv, "text/csv", "q3.csv"))
    code, text = send(pf, data)
    assert code == 250, text
    f = delivered(pf, mid)
    assert f is not None, pf.log[-2000:]
    got = f.read_bytes()
    assert b"X-Spam-Status: No" in got  # rspamd scanned it and said so in a header
    assert b"north,Q3,120400" in got or base64.b64encode(csv)[:20] in got  # attachment kept
    assert mid in filters.rspamd.log


@pytest.mark.realmta
def test_clamd_signatures_are_the_eicar_file_and_nothing_else(tmp_path: Path) -> None:
    need_binary("clamd")
    sig = signatures()
    # the line `sigtool --md5 eicar.com` prints: md5:size:name
    assert sig["local.hdb"].startswith("44d88612fea8a8f36de82e1278abb02f:68:")
    with ThrowawayClamd(tmp_path / "clamd") as av:
        assert scan_bytes(av.socket, EICAR).endswith(" FOUND")
        assert scan_bytes(av.socket, b"plain text, no virus here\n") == "stream: OK"
        assert scan_bytes(av.socket, EICAR[:-1]) == "stream: OK"  # one byte short: not it
    assert not (tmp_path / "clamd").exists()


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
    out: set[int] = set()
    todo = [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        todo.extend(kids - out)
        out |= kids
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.realmta
def test_the_stack_stops_cleanly_and_leaves_nothing_behind() -> None:
    need_filters()
    filters = ThrowawayFilters()
    filters.start()
    try:
        assert filters.rspamd.proc is not None and filters.clamd.proc is not None
        pids = {filters.rspamd.proc.pid, filters.clamd.proc.pid}
        pids |= _descendants(filters.rspamd.proc.pid)  # rspamd's proxy worker and hs_helper
        assert len(pids) >= 3
        dns = filters.rspamd.dns
        assert dns is not None
    finally:
        filters.stop()
    assert [p for p in pids if _alive(p)] == []
    assert not filters.base.exists()
    assert not dns._thread.is_alive()


def test_missing_rspamd_and_clamd_say_what_to_install(tmp_path: Path) -> None:
    rs = ThrowawayRspamd(base=tmp_path / "rs")
    rs.binary = None  # as on a machine without the package
    with pytest.raises(RspamdError, match=r"rspamd is not installed: apt-get install -y rspamd"):
        rs.start()
    av = ThrowawayClamd(tmp_path / "av")
    av.binary = None
    with pytest.raises(ClamavError, match=r"apt-get install -y clamav-daemon") as info:
        av.start()
    assert isinstance(info.value, StartupError)


@pytest.mark.realmta
def test_rspamd_that_cannot_bind_its_socket_is_reported_with_its_log(tmp_path: Path) -> None:
    need_filters()
    base = tmp_path / "rs"
    (base / "run" / "milter.sock").mkdir(parents=True)  # the socket's path is taken
    rs = ThrowawayRspamd(base=base)
    with pytest.raises(RspamdError, match=r"(?s)rspamd did not start.*milter\.sock") as info:
        rs.start(timeout=20)
    assert isinstance(info.value, StartupError)
    assert rs.proc is None and rs.dns is None and not base.exists()


@pytest.mark.realmta
def test_clamd_that_cannot_load_its_database_is_reported_with_its_words(tmp_path: Path) -> None:
    need_binary("clamd")
    base = tmp_path / "av"
    (base / "db").mkdir(parents=True)
    (base / "db" / "broken.ndb").write_text("this is not a signature\n")
    av = ThrowawayClamd(base)
    with pytest.raises(ClamavError, match=r"(?s)clamd did not start: exited.*Malformed database"):
        av.start(timeout=20)
    assert av.proc is None and not base.exists()


@pytest.mark.realmta
def test_postfix_command_with_filters_rejects_gtube_until_ctrl_c() -> None:
    need_filters()
    port = free_port()
    base = Path(tempfile.gettempdir()) / f"mailsla-pf-filters-{port}"
    args = ["--port", str(port), "--dir", str(base), "--relay-to", f"127.0.0.1:{free_port()}"]
    proc = subprocess.Popen(
        [*MAILSLA, "postfix", "--filters", *args, "--users", "2"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info: dict[str, Any] = {}
        for _ in range(6):
            line = proc.stdout.readline()
            if line.startswith("{"):
                info = json.loads(line)
                break
        assert info, proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
        assert info["filters"]["scenario"] == "scenarios/filters.toml"
        assert info["filters"]["milter"].startswith(f"unix:{base}-filters/")
        pf = ThrowawayPostfix("127.0.0.1:9", port=port)  # only to address it
        assert send(pf, message(GTUBE)[1]) == (554, "5.7.1 Gtube pattern")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not base.exists() and not Path(f"{base}-filters").exists()
