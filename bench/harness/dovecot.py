"""A throwaway Dovecot IMAP server in a temporary folder, for tests and ``mailsla selftest``.

Config, runtime sockets, state, indexes and logs live under one temporary folder: no system
service is touched. It serves the Maildirs under ``mail_root`` over plain IMAP on 127.0.0.1:
user ``u`` logs in as ``u`` (any user name, one shared password) and sees ``<mail_root>/u/``.
Runs in the foreground (``dovecot -F``) until :meth:`stop`. Root only; the Debian
``dovecot-imapd`` package must be installed. When it does not start, its log says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.harness.daemons import HarnessError, free_port, wait_for_greeting

NOBODY = 65534


class DovecotError(HarnessError):
    """Dovecot is missing or did not start; the message carries the log's tail."""


def find_dovecot() -> str | None:
    for p in ("/usr/sbin/dovecot", shutil.which("dovecot")):
        if p and os.path.exists(p):
            return p
    return None


def _conf(base: Path, mail_root: Path, port: int, password: str, uid: int, gid: int) -> str:
    if any(c in password for c in " \t\r\n\"'\\#"):
        raise DovecotError("the password must not contain spaces, quotes, # or backslashes")
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
  args = uid={uid} gid={gid} home={mail_root}/%n
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

    def __init__(self, mail_root: Path, *, port: int = 0, password: str = "mailsla") -> None:
        self.mail_root = Path(mail_root).absolute()
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
        self.conf.write_text(_conf(b, self.mail_root, self.port, self.password, self.uid, self.gid))
        self.proc = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.conf)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out = wait_for_greeting(self.proc, self.port, b"* OK", timeout, 0.05)
        if out is None:
            return self.port
        log = self.log[-3000:]
        self.stop()
        raise DovecotError(f"dovecot did not start:\n{out}\n{log}".rstrip())

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
