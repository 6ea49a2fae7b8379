"""How a fake MTA is set up (:class:`FakeMtaConfig`), apart from the server that reads it, so
that its handlers can name it without importing the server."""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.config.delays import Delay
from bench.config.faults import Outage, StageFault
from bench.config.filters import FilterSpec
from bench.smtp.limits import Limits

QUEUE_LIMIT = 100_000  # messages held by default (overload grew the queue ~13 MB/s unbounded)
QUEUE_BYTES_LIMIT = 1 << 30  # their bytes held by default: 1 GiB


@dataclass(frozen=True, slots=True)
class FakeMtaConfig:
    """How the fake MTA listens, what it relays where, what it delivers locally, how slowly."""

    relay_host: str
    relay_port: int
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    hostname: str = "mta.local.test"
    relay_domains: tuple[str, ...] = ("remote.test",)
    processing_delay: Delay = field(default_factory=lambda: Delay("const", 0.0))
    delivery_workers: int = 8
    seed: int = 1
    timeout: float = 30.0
    max_attempts: int = 5
    # local delivery: on when mailbox_root is set (else local-domain RCPT is relay-denied)
    local_domain: str = "local.test"
    local_users: tuple[str, ...] = ()
    mailbox_root: str | None = None
    delivery_delay: Delay = field(default_factory=lambda: Delay("const", 0.0))
    mailbox_file_mode: int = 0o600  # 0o644 lets an IMAP server running as another user read
    inbound_host: str = "127.0.0.1"
    inbound_port: int = 0  # listened on only with local delivery; 0: any free port
    # STARTTLS: without a certificate, a self-signed one is made at start
    tls: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_required: bool = False
    # AUTH PLAIN/LOGIN on the submission port (only after STARTTLS when tls is on)
    auth_users: tuple[tuple[str, str], ...] = ()
    auth_required: bool = False
    # misbehaving on purpose (fakemta.faults); both ports
    faults: tuple[StageFault, ...] = ()
    outages: tuple[Outage, ...] = ()
    filter: FilterSpec | None = None  # the filter stage (fakemta.filter); None: none
    max_rate: float | None = None  # relayed messages per second at most; the queue absorbs more
    # what a client may ask of either port (bench.smtp.limits: Postfix's defaults and replies)
    recipient_limit: int = 1000  # smtpd_recipient_limit: 452 4.5.3 past it
    line_length_limit: int = 2048  # line_length_limit, for command lines: 500 5.5.2 past it
    message_size_limit: int = 10_240_000  # message_size_limit: advertised SIZE; 552 5.3.4 past it
    error_limit: int = 20  # smtpd_hard_error_limit: 421 4.7.0 and close after that many errors
    idle_timeout: float = 300.0  # smtpd_timeout: 421 4.4.2 and close after that long silent
    # messages held at most (None: QUEUE_LIMIT); then 452 4.3.1 after the end of DATA
    queue_limit: int | None = None
    queue_bytes_limit: int | None = None  # their bytes at most (None: QUEUE_BYTES_LIMIT); 452 too

    def limits(self) -> Limits:
        """The limits of both ports (ValueError if one is out of range)."""
        return Limits(
            recipients=self.recipient_limit,
            line_length=self.line_length_limit,
            message_size=self.message_size_limit,
            errors=self.error_limit,
            idle_timeout=self.idle_timeout,
        )

    # False: aiosmtpd on the submission port and aiosmtplib for every relayed message, what the
    # fast paths replaced (``mailsla selftest --fast-paths`` measures one against the other)
    fast_paths: bool = True
