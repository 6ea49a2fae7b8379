"""A throwaway rspamd in a temporary folder: one proxy worker speaking milter on a unix socket,
scanning by itself (``self_scan``), for the throwaway Postfix's ``smtpd_milters``.

Offline by construction: every module that would reach the network (DNS lists, SPF, DKIM,
DMARC, fuzzy hashes, remote maps, Redis-backed ones) is off, and rspamd's resolver points at a
loopback stub that answers every name NXDOMAIN at once (:mod:`bench.harness.dns_stub`), so
nothing leaves the machine and no lookup waits out a timeout. GTUBE is rejected by rspamd's own
pattern check (with ``test_patterns``, its "add header" variant is tagged ``X-Spam: Yes``);
with a clamd socket given, the antivirus module sends each attachment (and the message) to it
and rejects what it finds (``554 5.7.1 clamav: virus found: ...``). The system
rspamd's rules under /etc/rspamd are used as they are; no system service is touched.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from bench.harness.daemons import HarnessError
from bench.harness.dns_stub import NxdomainServer

CONFDIR = Path("/etc/rspamd")
RUN_AS = "_rspamd"  # Debian's rspamd user

# Modules that look things up elsewhere (DNS, HTTP maps, Redis): off, so a scan is local.
NETWORK_MODULES = [
    *("arc", "asn", "dcc", "dkim", "dkim_signing", "dmarc", "emails", "external_services"),
    *("fuzzy_check", "greylist", "history_redis", "hfilter", "metadata_exporter", "multimap"),
    *("mx_check", "neural", "once_received", "phishing", "ratelimit", "rbl", "replies"),
    *("reputation", "rspamd_update", "spf", "url_redirector", "whitelist"),
]
VIRUS_MESSAGE = "${SCANNER}: virus found: ${VIRUS}"
# rspamd compiles its URL matcher from the public suffix list at start (~8 s for the ~9,600
# suffixes Debian ships): a short list of the common ones starts in well under a second, and
# only changes which bare host names in text are taken for URLs.
URL_TLDS = [
    *("com", "net", "org", "edu", "gov", "mil", "int", "info", "biz", "io", "co", "uk", "de"),
    *("fr", "nl", "eu", "ru", "cn", "jp", "br", "it", "es", "ch", "at", "be", "se", "no", "dk"),
    *("fi", "pl", "cz", "us", "ca", "au", "in", "test", "example", "invalid", "localhost"),
    "local",
]


def milter_handshake(path: Path, timeout: float = 2.0) -> bool:
    """Whether a milter answers on the unix socket *path*: option negotiation (SMFIC_OPTNEG,
    protocol version 6, as Postfix sends it) answered in kind, then SMFIC_QUIT."""
    optneg = b"O" + struct.pack("!III", 6, 0x1FF, 0x1FFFFF)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(struct.pack("!I", len(optneg)) + optneg)
        head = s.recv(5)
        s.sendall(struct.pack("!I", 1) + b"Q")
    return len(head) == 5 and head[4:5] == b"O"


class RspamdError(HarnessError):
    """rspamd is missing or did not start; the message says what to do, with its log's tail."""


def find_rspamd() -> str | None:
    for p in ("/usr/bin/rspamd", shutil.which("rspamd")):
        if p and os.path.exists(p):
            return p
    return None


def _conf(base: Path, dns: str, test_patterns: bool) -> str:
    # rspamd 3.4's name for it (later releases: gtube_patterns = "all")
    patterns = "  enable_test_patterns = true;\n" if test_patterns else ""
    return f"""# Written by mailsla's harness: a throwaway, offline rspamd (milter only).
.include "$CONFDIR/common.conf"
options {{
{patterns}  pidfile = "{base}/run/rspamd.pid";
  filters = "chartable,regexp";
  dns {{
    nameserver = ["{dns}"];
    timeout = 1s;
    retransmits = 1;
    sockets = 4;
  }}
  cache_file = "$DBDIR/symbols.cache";
  dynamic_conf = "$DBDIR/rspamd_dynamic";
  history_file = "$DBDIR/rspamd.history";
  hs_cache_dir = "$DBDIR/";
  control_socket = "$DBDIR/rspamd.sock mode=0600";
  url_tld = "{base}/tlds.dat";
  tempdir = "{base}/tmp";
  task_timeout = 8s;
  local_addrs = [];
}}
logging {{
  type = "file";
  filename = "{base}/log/rspamd.log";
  level = "info";
}}
worker "rspamd_proxy" {{
  bind_socket = "{base}/run/milter.sock mode=0666";
  milter = yes;
  upstream "local" {{
    default = yes;
    self_scan = yes;
  }}
  timeout = 120s;
  count = 1;
  reject_message = "Spam message rejected";
  spam_header = "X-Spam";
}}
"""


def _local_d(clamd_socket: Path | None) -> dict[str, str]:
    files = {f"{m}.conf": "enabled = false;\n" for m in NETWORK_MODULES}
    files["redis.conf"] = "# no servers: Redis-backed features stay off\n"
    files["classifier-bayes.conf"] = "enabled = false;\n"
    # No greylisting (nothing to remember it in): mail is accepted, tagged or rejected.
    files["actions.conf"] = "greylist = null;\n"
    files["milter_headers.conf"] = 'use = ["x-spam-status"];\nskip_local = false;\n'
    if clamd_socket is not None:
        files["antivirus.conf"] = f"""clamav {{
  type = "clamav";
  servers = "{clamd_socket}";
  action = "reject";
  message = '{VIRUS_MESSAGE}';
  scan_mime_parts = true;
  scan_text_mime = false;
  scan_image_mime = false;
  symbol = "CLAM_VIRUS";
  log_clean = true;
  timeout = 10.0;
  retransmits = 1;
  patterns {{ JUST_EICAR = '^Mailsla\\.Eicar'; }}
}}
"""
    else:
        files["antivirus.conf"] = "enabled = false;\n"
    return files


class ThrowawayRspamd:
    """``with ThrowawayRspamd(clamd_socket=av.socket) as rs: rs.milter`` (``unix:/...``)."""

    def __init__(
        self,
        *,
        clamd_socket: Path | None = None,
        base: Path | None = None,
        test_patterns: bool = False,
    ) -> None:
        # GTUBE's variants (message.gtube = "add_header": rspamd's "add header" action, so
        # spam is tagged X-Spam: Yes and delivered) beside the standard, rejected one
        self.test_patterns = test_patterns
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        self.base = base or Path(tempfile.mkdtemp(prefix="mailsla-rspamd-"))
        self.clamd_socket = clamd_socket
        self.binary = find_rspamd()
        self.proc: subprocess.Popen[bytes] | None = None
        self.dns: NxdomainServer | None = None

    @property
    def socket(self) -> Path:
        return self.base / "run" / "milter.sock"

    @property
    def milter(self) -> str:
        """The value for Postfix's ``smtpd_milters``."""
        return f"unix:{self.socket}"

    @property
    def log(self) -> str:
        p = self.base / "log" / "rspamd.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def _prepare(self) -> list[str]:
        assert self.binary is not None
        try:
            user = pwd.getpwnam(RUN_AS)
        except KeyError:
            raise RspamdError(
                f"rspamd's user {RUN_AS} does not exist: reinstall the package "
                "(apt-get install --reinstall -y rspamd)"
            ) from None
        b = self.base
        b.chmod(0o755)  # Postfix's smtpd (user postfix) must reach the milter socket
        for d in ("local.d", "db", "run", "log", "tmp"):
            (b / d).mkdir(exist_ok=True)
        for d in ("db", "run", "log", "tmp"):
            os.chown(b / d, user.pw_uid, user.pw_gid)
        for name, text in _local_d(self.clamd_socket).items():
            (b / "local.d" / name).write_text(text)
        assert self.dns is not None
        (b / "tlds.dat").write_text("".join(f"{t}\n" for t in URL_TLDS))
        (b / "rspamd.conf").write_text(_conf(b, self.dns.address, self.test_patterns))
        variables = {
            "CONFDIR": str(CONFDIR),
            "LOCAL_CONFDIR": str(b),
            "DBDIR": str(b / "db"),
            "RUNDIR": str(b / "run"),
            "LOGDIR": str(b / "log"),
        }
        cmd = [self.binary, "-f", "-u", RUN_AS, "-g", RUN_AS, "-c", str(b / "rspamd.conf")]
        return cmd + [f"--var={k}={v}" for k, v in variables.items()]

    def start(self, timeout: float = 60.0) -> str:
        if self.binary is None:
            raise RspamdError("rspamd is not installed: apt-get install -y rspamd")
        if os.geteuid() != 0:
            raise RspamdError("a throwaway rspamd needs root (it drops to its own user)")
        self.dns = NxdomainServer()
        self.dns.start()
        self.proc = subprocess.Popen(
            self._prepare(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.socket.exists():  # bound by the main process; the worker answers later
                try:
                    if milter_handshake(self.socket):
                        return self.milter
                except OSError:
                    pass
            time.sleep(0.05)
        out, code = b"", self.proc.poll()
        if code is not None and self.proc.stdout is not None:
            out = self.proc.stdout.read()
        log = self.log[-3000:]
        self.stop()
        why = f"exited with code {code}" if code is not None else f"no answer in {timeout:.0f} s"
        raise RspamdError(
            f"rspamd did not start: {why} (its output and log follow; "
            "`rspamadm configtest -c <dir>/rspamd.conf` checks a configuration):\n"
            f"{out.decode(errors='replace')}\n{log}"
        )

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()  # the main process stops its workers on SIGTERM
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None
        if self.dns is not None:
            self.dns.stop()
            self.dns = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ThrowawayRspamd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
