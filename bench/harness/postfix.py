"""A throwaway Postfix instance in a temporary folder, for tests and ``mailsla selftest``.

Everything lives under one folder (config, queue, data, log, Maildir): no system service is
touched. It relays ``relay_domain`` to a given host:port (mailsla's post office, or a sink),
delivers ``local_domain`` to one Maildir per user (``<base>/mail/<local_domain>/<user>/``, as
uid 65534, the way Postfix's virtual delivery agent does; or, with ``lmtp`` given, hands it to
Dovecot's LMTP, whose Sieve rule can file it into Junk), and runs in the foreground
(``postfix start-fg``) until :meth:`stop`. Root only; the Debian ``postfix`` package must be
installed. When it does not start, its log says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.harness.daemons import HarnessError, free_port, wait_for_greeting

MASTER_PROTO = Path("/etc/postfix/master.cf.proto")


class PostfixError(HarnessError):
    """Postfix is missing or did not start; the message carries the log's tail."""


def find_postfix() -> str | None:
    for p in ("/usr/sbin/postfix", shutil.which("postfix")):
        if p and os.path.exists(p):
            return p
    return None


def _main_cf(base: Path, relay_to: str, relay_domain: str, local_domain: str) -> str:
    host, _, port = relay_to.rpartition(":")
    return f"""compatibility_level = 3.6
queue_directory = {base}/spool
data_directory = {base}/data
maillog_file = {base}/log/maillog
maillog_file_prefixes = {base}
myhostname = mta.{local_domain}
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
relay_domains = {relay_domain}
transport_maps = inline:{{ {relay_domain}=smtp:[{host}]:{port} }}
virtual_mailbox_domains = {local_domain}
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = texthash:{base}/etc/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtp_dns_support_level = disabled
smtp_host_lookup = native
smtputf8_enable = no
biff = no
default_process_limit = 100
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtp_destination_concurrency_limit = 20
default_destination_concurrency_limit = 20
"""


def _milter_cf(milter: str | None) -> str:
    """Every SMTP message through *milter* (rspamd's); if it cannot be reached, mail is deferred
    with a 4xx (never passed unfiltered)."""
    if milter is None:
        return ""
    return f"""smtpd_milters = {milter}
milter_protocol = 6
milter_default_action = tempfail
milter_mail_macros = i {{mail_addr}} {{client_addr}} {{client_name}} {{auth_authen}}
milter_connect_timeout = 10s
milter_command_timeout = 30s
milter_content_timeout = 60s
"""


def _master_cf(port: int) -> str:
    out = []
    for line in MASTER_PROTO.read_text().splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{port}"
            fields[4] = "n"  # no chroot: the instance lives in a temp folder
            out.append(" ".join(fields))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


class ThrowawayPostfix:
    """``with ThrowawayPostfix(relay_to="127.0.0.1:2526") as pf: ... pf.port``"""

    def __init__(
        self,
        relay_to: str,
        *,
        relay_domain: str = "remote.test",
        local_domain: str = "local.test",
        port: int = 0,
        base: Path | None = None,
        users: int = 1000,
        milter: str | None = None,
        lmtp: Path | None = None,
    ) -> None:
        self.lmtp = lmtp  # Dovecot's LMTP socket: local mail is delivered through it
        self.milter = milter  # e.g. rspamd's "unix:/path/milter.sock": smtpd_milters
        self.users = users  # local mailboxes user0 .. user<users-1>; others get 550
        self.relay_to, self.relay_domain, self.local_domain = relay_to, relay_domain, local_domain
        self.port = port or free_port()
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        self.base = base or Path(tempfile.mkdtemp(prefix="mailsla-postfix-"))
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = find_postfix()

    @property
    def maildir_root(self) -> Path:
        """The folder holding one Maildir per local user."""
        return self.base / "mail" / self.local_domain

    @property
    def log(self) -> str:
        p = self.base / "log" / "maillog"
        return p.read_text(errors="replace") if p.exists() else ""

    def start(self, timeout: float = 30.0) -> int:
        if self.binary is None:
            raise PostfixError("postfix is not installed (apt-get install -y postfix)")
        b = self.base
        b.chmod(0o755)  # mkdtemp makes it 0700: Postfix's own users must get through
        for d in ("etc", "spool", "data", "log", "mail"):
            (b / d).mkdir(exist_ok=True)
        shutil.chown(b / "data", "postfix")
        shutil.chown(b / "mail", 65534, 65534)
        (b / "mail" / self.local_domain).mkdir(exist_ok=True)
        shutil.chown(b / "mail" / self.local_domain, 65534, 65534)
        # One Maildir per user (virtual(8) forbids $1 substitution from regexp tables).
        d = self.local_domain
        (b / "etc" / "vmailbox").write_text(
            "".join(f"user{i}@{d} {d}/user{i}/\n" for i in range(self.users))
        )
        main_cf = _main_cf(b, self.relay_to, self.relay_domain, self.local_domain)
        if self.lmtp is not None:  # the same mailboxes (virtual_mailbox_maps), Dovecot writes
            main_cf += f"virtual_transport = lmtp:unix:{self.lmtp}\n"
        (b / "etc" / "main.cf").write_text(main_cf + _milter_cf(self.milter))
        (b / "etc" / "master.cf").write_text(_master_cf(self.port))
        for f in ("dynamicmaps.cf",):
            if Path("/etc/postfix", f).exists():
                shutil.copy(Path("/etc/postfix", f), b / "etc" / f)
        env = {**os.environ, "MAIL_CONFIG": str(b / "etc")}
        subprocess.run(
            [self.binary, "-c", str(b / "etc"), "set-permissions"],
            env=env,
            capture_output=True,
            check=False,
        )
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(b / "etc"), "start-fg"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        out = wait_for_greeting(self.proc, self.port, b"220", timeout, 0.1)
        if out is None:
            return self.port
        log = self.log[-3000:]
        self.stop()
        raise PostfixError(f"postfix did not start:\n{out}\n{log}")

    def stop(self) -> None:
        if self.binary and self.proc is not None:
            subprocess.run(
                [self.binary, "-c", str(self.base / "etc"), "stop"],
                capture_output=True,
                check=False,
                timeout=30,
            )
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> ThrowawayPostfix:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
