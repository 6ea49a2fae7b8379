"""A throwaway ClamAV daemon (clamd) in a temporary folder, with an EICAR signature built here.

Debian's ClamAV ships no signatures and freshclam cannot reach the internet from a test machine,
so the harness writes its own database: ``local.hdb`` (the MD5 and size of the 68-byte EICAR
file, the line ``sigtool --md5`` prints) and ``local.ndb`` (the EICAR string as a body
signature, which also matches once clamd has decoded a base64 MIME attachment). clamd runs in
the foreground on a unix socket in that folder until :meth:`stop`; no system service is touched.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness.daemons import HarnessError

# The standard anti-virus test file (eicar.org): 68 bytes, no leading or trailing newline.
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
HDB_NAME = "Mailsla.Eicar-Test-File.MD5"
NDB_NAME = "Mailsla.Eicar-Test-File.Body"


class ClamavError(HarnessError):
    """clamd is missing or did not start; the message says what to do, with its log's tail."""


def find_clamd() -> str | None:
    for p in ("/usr/sbin/clamd", shutil.which("clamd")):
        if p and os.path.exists(p):
            return p
    return None


def signatures() -> dict[str, str]:
    """The database files, by name: the EICAR file's MD5 (hdb) and its body pattern (ndb)."""
    md5 = hashlib.md5(EICAR).hexdigest()  # the signature format is MD5
    return {
        "local.hdb": f"{md5}:{len(EICAR)}:{HDB_NAME}\n",
        "local.ndb": f"{NDB_NAME}:0:*:{EICAR.hex()}\n",
    }


def _conf(base: Path) -> str:
    return f"""Foreground yes
LocalSocket {base}/clamd.sock
LocalSocketMode 666
FixStaleSocket yes
DatabaseDirectory {base}/db
TemporaryDirectory {base}/tmp
PidFile {base}/clamd.pid
LogFile {base}/clamd.log
LogTime yes
LogClean no
ScanMail yes
ScanArchive yes
Bytecode no
MaxThreads 4
ReadTimeout 30
"""


def clamd_command(sock: Path, command: bytes, timeout: float = 5.0) -> bytes:
    """Send one ``z``-terminated command to clamd on *sock*; its reply without the NUL."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(b"z" + command + b"\0")
        reply = b""
        while not reply.endswith(b"\0"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.rstrip(b"\0")


def scan_bytes(sock: Path, data: bytes, timeout: float = 10.0) -> str:
    """clamd's verdict on *data* (INSTREAM): ``stream: OK`` or ``stream: <name> FOUND``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock))
        s.sendall(b"zINSTREAM\0" + len(data).to_bytes(4, "big") + data + b"\0\0\0\0")
        reply = b""
        while not reply.endswith(b"\0"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return reply.rstrip(b"\0").decode(errors="replace")


class ThrowawayClamd:
    """``with ThrowawayClamd() as av: av.socket``"""

    def __init__(self, base: Path | None = None) -> None:
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        self.base = base or Path(tempfile.mkdtemp(prefix="mailsla-clamd-"))
        self.binary = find_clamd()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.base / "clamd.sock"

    @property
    def log(self) -> str:
        p = self.base / "clamd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self, timeout: float = 60.0) -> Path:
        if self.binary is None:
            raise ClamavError(
                "clamd is not installed: apt-get install -y clamav-daemon (the harness builds "
                "its own EICAR signatures; no freshclam needed)"
            )
        b = self.base
        b.chmod(0o755)  # rspamd (its own user) must reach the socket
        for d in ("db", "tmp"):
            (b / d).mkdir(exist_ok=True)
        for name, text in signatures().items():
            (b / "db" / name).write_text(text)
        (b / "clamd.conf").write_text(_conf(b))
        self.proc = subprocess.Popen(
            [self.binary, f"--config-file={b}/clamd.conf"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if clamd_command(self.socket, b"PING", timeout=1) == b"PONG":
                    return self.socket
            except OSError:
                time.sleep(0.05)
        out, code = b"", self.proc.poll()
        if code is not None and self.proc.stdout is not None:
            out = self.proc.stdout.read()
        log = self.log[-2000:]
        self.stop()
        why = f"exited with code {code}" if code is not None else f"no answer in {timeout:.0f} s"
        raise ClamavError(
            f"clamd did not start: {why} (its output and log follow; check {b}/db and "
            "that the folder is writable):\n"
            f"{out.decode(errors='replace')}\n{log}"
        )

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ThrowawayClamd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
