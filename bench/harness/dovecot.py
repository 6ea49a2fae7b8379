"""A throwaway Dovecot IMAP server in a temporary folder, for tests and ``mailsla selftest``.

Config, runtime sockets, state, indexes and logs live under one temporary folder: no system
service is touched. It serves the Maildirs under ``mail_root`` over plain IMAP on 127.0.0.1:
user ``u`` logs in as ``u`` (any user name, one shared password) and sees ``<mail_root>/u/``.
Runs in the foreground (``dovecot -F``) until :meth:`stop`. Root only; the Debian
``dovecot-imapd`` package must be installed. When it does not start, its log says why.

With ``lmtp=True`` it also delivers: an LMTP socket (:attr:`ThrowawayDovecot.lmtp_socket`, for
Postfix's ``virtual_transport``) writes into the same Maildirs and runs the Sieve rule of
:mod:`bench.harness.sieve` first, so what a filter marked as spam is filed into Junk (Debian's
``dovecot-lmtpd`` and ``dovecot-sieve``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness.daemons import HarnessError, free_port, wait_for_greeting
from bench.harness.sieve import write_junk_script

NOBODY = 65534


class DovecotError(HarnessError):
    """Dovecot is missing or did not start; the message carries the log's tail."""


def find_dovecot() -> str | None:
    for p in ("/usr/sbin/dovecot", shutil.which("dovecot")):
        if p and os.path.exists(p):
            return p
    return None


def _lmtp_conf(base: Path) -> str:
    """LMTP on a unix socket Postfix's lmtp client (user postfix) may use; Sieve before every
    delivery. Users are whoever the MTA names (its own maps say who exists)."""
    return f"""protocols = $protocols lmtp
service lmtp {{
  unix_listener lmtp {{
    mode = 0666
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
  postmaster_address = postmaster@localhost
}}
plugin {{
  sieve_before = {base}/sieve/junk.sieve
  sieve = file:{base}/sieve/none;active={base}/sieve/none.sieve
}}
"""


def _conf(
    base: Path, mail_root: Path, port: int, password: str, uid: int, gid: int, lmtp: bool
) -> str:
    if any(c in password for c in " \t\r\n\"'\\#"):
        raise DovecotError("the password must not contain spaces, quotes, # or backslashes")
    users = " allow_all_users=yes" if lmtp else ""
    return _main_conf(base, mail_root, port, password, uid, gid, users) + (
        _lmtp_conf(base) if lmtp else ""
    )


def _main_conf(
    base: Path, mail_root: Path, port: int, password: str, uid: int, gid: int, users: str
) -> str:
    return f"""protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = {base.name}
auth_failure_delay = 0
log_path = {base}/log/dovecot.log
info_log_path = {base}/log/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
first_valid_gid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{mail_root}/%n:INDEX={base}/index/%n:CONTROL={base}/control/%n
mail_fsync = never
maildir_very_dirty_syncs = no
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail_root}/%n{users}
}}
default_process_limit = 1024
default_client_limit = 4096
mail_max_userip_connections = 100
namespace inbox {{
  inbox = yes
  mailbox Junk {{
    special_use = \\Junk
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  service_count = 0
  client_limit = 4096
}}
service imap {{
  process_limit = 4096
}}
"""


class ThrowawayDovecot:
    """``with ThrowawayDovecot(mail_root) as dc: ... dc.port``

    Mail belongs to ``uid``/``gid``: the owner of ``mail_root`` unless that is root, else
    65534 (nobody, as Postfix's virtual delivery). ``mail_root`` must be reachable by it.
    """

    def __init__(
        self, mail_root: Path, *, port: int = 0, password: str = "mailsla", lmtp: bool = False
    ) -> None:
        self.mail_root = Path(mail_root).absolute()
        self.lmtp = lmtp
        self.password = password
        self.port = port or free_port()
        st = self.mail_root.stat() if self.mail_root.exists() else None
        self.uid = st.st_uid if st is not None and st.st_uid != 0 else NOBODY
        self.gid = st.st_gid if st is not None and st.st_uid != 0 else NOBODY
        self.base = Path(tempfile.mkdtemp(prefix="mailsla-dovecot-"))
        self.conf = self.base / "dovecot.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = find_dovecot()

    @property
    def lmtp_socket(self) -> Path:
        """Where LMTP listens (with ``lmtp=True``): Postfix's ``lmtp:unix:<this>``."""
        return self.base / "run" / "lmtp"

    @property
    def log(self) -> str:
        p = self.base / "log" / "dovecot.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self, timeout: float = 30.0) -> int:
        """Start Dovecot; return its port once it greets with ``* OK``."""
        if self.binary is None:
            raise DovecotError("dovecot is not installed (apt-get install -y dovecot-imapd)")
        b = self.base
        b.chmod(0o755)  # mkdtemp makes it 0700: Dovecot's own users must get through
        for d in ("run", "state", "log", "index", "control"):
            (b / d).mkdir(exist_ok=True)
        for d in ("index", "control"):
            os.chown(b / d, self.uid, self.gid)
        (b / "run").chmod(0o755)  # Postfix's lmtp client reaches the socket through it
        conf = _conf(b, self.mail_root, self.port, self.password, self.uid, self.gid, self.lmtp)
        self.conf.write_text(conf)
        if self.lmtp:
            try:
                write_junk_script(b / "sieve", self.conf)
            except HarnessError:
                self.stop()
                raise
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out = wait_for_greeting(self.proc, self.port, b"* OK", timeout, 0.05)
        if out is None and self.lmtp:
            out = self._wait_lmtp(timeout)
        if out is None:
            return self.port
        log = self.log[-3000:]
        self.stop()
        raise DovecotError(f"dovecot did not start:\n{out}\n{log}".rstrip())

    def _wait_lmtp(self, timeout: float) -> str | None:
        """None once LMTP greets on its socket (its listener is made with IMAP's); else why."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(2.0)
                    s.connect(str(self.lmtp_socket))
                    if s.recv(64).startswith(b"220"):
                        return None
            except OSError:
                pass
            time.sleep(0.05)
        return f"LMTP did not greet on {self.lmtp_socket} in {timeout:.0f} s"

    def stop(self) -> None:
        """Stop Dovecot (SIGTERM to its master, SIGKILL after 15 s); remove its folder."""
        if self.binary and self.proc is not None:
            if self.proc.poll() is None:
                # What ``doveadm stop`` does (SIGTERM to the master), without its 2 s of polling
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=15)
            if self.proc.stdout:
                self.proc.stdout.close()
            self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ThrowawayDovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
