"""The stand-in mail system: an SMTP server in front of :class:`fakemta.relay.Relay`.

Its submission port speaks aiosmtpd (:mod:`bench.smtp.aioserver`) when STARTTLS, AUTH, local
delivery or faults are on, and otherwise mailsla's own server core, the post office's
(:mod:`fakemta.submission`: the same handler, :class:`fakemta.inbound.InboundHandler`, and the
same replies; 2.4× the messages a second it accepts, measured closed-loop through the whole path
on 2 cores). ``FakeMtaConfig.fast_paths = False`` keeps aiosmtpd (and aiosmtplib for every
relayed message): ``mailsla selftest --fast-paths`` measures the two side by side.

It accepts mail for its relay domains on its submission port, answers 250 once the message is
queued, and relays it after the configured processing delay. With a mailbox root it is also the
post office of its local domain: mail for known local users (on the submission port, or on a
second "inbound" port for mail from other post offices, which relays nothing) is delivered to
their Maildirs after the delivery delay (:mod:`fakemta.maildir`). STARTTLS and AUTH are
optional (:mod:`fakemta.tls`). Everything binds 127.0.0.1 with an explicit hostname (no
``getfqdn()`` lookups).

It can misbehave on purpose (:mod:`fakemta.faults`, :mod:`fakemta.faultsmtp`): stage faults and
outages on both ports, and a service-rate cap on the relay (``max_rate``). It holds its clients
to limits, the same on both ports and both server paths (:mod:`bench.smtp.limits`: Postfix's
defaults and replies, set by the config's ``*_limit`` fields and ``idle_timeout``), and its queue
to a limit: with ``queue_limit`` messages (default :data:`fakemta.config.QUEUE_LIMIT`) or
``queue_bytes_limit`` bytes held, the reply after the end of DATA is :data:`QUEUE_FULL` (at the
dot, where the check and the queueing are one step, so the limit holds exactly).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import Callable
from typing import Any, TypedDict

from bench.config.faults import check_faults, check_outages
from bench.errors import RunError
from bench.smtp.aioserver import FastSMTP as SMTPServerProtocol
from fakemta.config import FakeMtaConfig
from fakemta.faults import FaultPlan, FaultStats
from fakemta.faultsmtp import FaultRuntime, FaultySMTP
from fakemta.filter import FilterStage
from fakemta.inbound import InboundHandler
from fakemta.maildir import LocalDelivery, Maildirs
from fakemta.relay import Relay
from fakemta.submission import queue_factory
from fakemta.tls import ServerTls, UserTable

__all__ = ["FakeMta", "FakeMtaConfig", "ReadyInfo", "StartError"]


class ReadyInfo(TypedDict):
    """Where a started fake MTA listens (what process.py reports as ``("ready", info)``)."""

    port: int
    inbound_port: int | None
    cert_file: str | None


class StartError(RunError):
    """The fake MTA could not start; the message says what (listen address, TLS certificate,
    mailboxes)."""


log = logging.getLogger("fakemta.server")


class FakeMta:
    """One fake MTA: submission server plus relay queue (and optionally an inbound server and
    local delivery), on the running event loop."""

    def __init__(self, config: FakeMtaConfig) -> None:
        self.config = config
        check_faults(config.faults)
        check_outages(config.outages)
        if config.queue_limit is not None and config.queue_limit < 1:
            raise ValueError(f"queue_limit {config.queue_limit}: must be at least 1")
        if config.queue_bytes_limit is not None and config.queue_bytes_limit < 1:
            raise ValueError(f"queue_bytes_limit {config.queue_bytes_limit}: must be at least 1")
        self.limits = config.limits()  # ValueError when one is out of range
        self.fault_stats = FaultStats()
        self.faults: FaultRuntime | None = None
        if config.faults or config.outages:
            self.faults = FaultRuntime(FaultPlan(config.faults, config.seed), self.fault_stats)
        self.relay = Relay(
            config.relay_host,
            config.relay_port,
            hostname=config.hostname,
            workers=config.delivery_workers,
            timeout=config.timeout,
            max_attempts=config.max_attempts,
            max_rate=config.max_rate,
            fast=config.fast_paths,
        )
        self.local: LocalDelivery | None = None
        if config.mailbox_root is not None:
            if config.local_domain.lower() in {d.lower() for d in config.relay_domains}:
                raise ValueError(f"{config.local_domain!r} is both relayed and local")
            maildirs = Maildirs(
                config.mailbox_root,
                config.local_users,
                config.hostname,
                config.mailbox_file_mode,
            )
            self.local = LocalDelivery(maildirs)
        self.auth = UserTable(config.auth_users) if config.auth_users else None
        self.filter = FilterStage(config.filter, config.seed) if config.filter else None
        self.handler = InboundHandler(
            config,
            self.relay,
            self.local,
            hide_auth=self.auth is None and config.tls,
            stats=self.fault_stats,
            filter_stage=self.filter,
        )
        self._servers: list[asyncio.AbstractServer] = []
        self._listeners: list[tuple[Callable[[], Any], str, int, str]] = []
        self._reopening: asyncio.Task[None] | None = None
        self._tls: ServerTls | None = None
        self.port = 0
        self.inbound_port: int | None = None
        self.cert_file: str | None = None

    async def start(self) -> int:
        """Start listening, relaying and delivering; returns the submission port. Raises
        :class:`StartError` saying what failed (and then holds nothing open)."""
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        try:
            await self._start()
        except BaseException:
            await self._close()
            raise
        self.relay.start()
        if self.faults is not None:
            self.faults.schedule(self.config.outages, self._refuse)
        return self.port

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        cfg = self.config
        if cfg.tls:
            try:
                self._tls = ServerTls(cfg.hostname, cfg.tls_cert, cfg.tls_key)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                what = cfg.tls_cert or "(self-signed)"
                raise StartError(f"cannot load the TLS certificate {what}: {exc}") from exc
            self.cert_file = self._tls.cert_file
        tls_context = self._tls.context if self._tls is not None else None
        options: dict[str, Any] = {}
        if self.auth is not None:
            options = {
                "authenticator": self.auth,
                "auth_require_tls": cfg.tls,  # plaintext AUTH only when there is no TLS
                "auth_required": cfg.auth_required,
            }

        def protocol(handler: InboundHandler, **extra: Any) -> Any:
            if self.faults is not None:
                extra["runtime"] = self.faults
            make = SMTPServerProtocol if self.faults is None else FaultySMTP
            return make(
                handler,
                limits=self.limits,
                hostname=cfg.hostname,
                ident="fakemta",
                enable_SMTPUTF8=False,
                decode_data=False,
                tls_context=tls_context,
                loop=loop,
                **extra,
            )

        fast = None
        plain = tls_context is None and self.auth is None and self.local is None
        if plain and self.faults is None and cfg.fast_paths:
            fast = queue_factory(self.handler, cfg.hostname, self.limits)

        def submission() -> Any:
            if cfg.auth_required and not cfg.tls:
                with warnings.catch_warnings():  # "AUTH without TLS": wanted on a test rig
                    warnings.simplefilter("ignore")
                    return protocol(self.handler, **options)
            return protocol(self.handler, require_starttls=cfg.tls_required, **options)

        # nothing needs aiosmtpd: fakemta.submission
        self.port = await self._listen(fast or submission, cfg.listen_host, cfg.listen_port, "")
        if self.local is not None:
            try:
                self.local.start()
            except OSError as exc:
                raise StartError(
                    f"cannot create the mailboxes under {cfg.mailbox_root}: {exc}"
                ) from exc
            # an MX: local mail only, opportunistic STARTTLS, no AUTH
            inbound = InboundHandler(
                cfg,
                self.relay,
                self.local,
                relaying=False,
                hide_auth=cfg.tls,
                filter_stage=self.filter,
            )
            inbound.stats = self.fault_stats
            self.inbound_port = await self._listen(
                lambda: protocol(inbound), cfg.inbound_host, cfg.inbound_port, " (inbound)"
            )

    async def _listen(self, factory: Callable[[], Any], host: str, port: int, what: str) -> int:
        loop = asyncio.get_running_loop()
        try:
            server = await loop.create_server(factory, host, port)
        except OSError as exc:
            raise StartError(
                f"cannot listen on {host}:{port}{what}: {exc.strerror or exc}"
            ) from exc
        self._servers.append(server)
        port = int(server.sockets[0].getsockname()[1])
        self._listeners.append((factory, host, port, what))
        return port

    def _refuse(self, refusing: bool) -> None:
        """A "refuse" outage: close the listeners, or (at its end) listen again."""
        if refusing:
            for server in self._servers:
                server.close()
            self._servers = []
        else:
            self._reopening = asyncio.ensure_future(self._reopen())

    async def _reopen(self) -> None:
        """Listen again on the same ports (a few tries: the port may be busy for a moment)."""
        loop = asyncio.get_running_loop()
        for factory, host, port, what in self._listeners:
            for attempt in range(50):
                try:
                    self._servers.append(await loop.create_server(factory, host, port))
                    break
                except OSError as exc:
                    if attempt == 49:
                        log.error("cannot listen again on %s:%d%s: %s", host, port, what, exc)
                    await asyncio.sleep(0.1)

    def info(self) -> ReadyInfo:
        return {"port": self.port, "inbound_port": self.inbound_port, "cert_file": self.cert_file}

    async def _close(self) -> None:
        if self.faults is not None:
            self.faults.cancel()
        if self._reopening is not None:
            self._reopening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopening
            self._reopening = None
        for server in self._servers:
            server.close()
        self._servers = []
        if self.faults is not None:
            self.faults.drop_all(abort=True)
        if self.local is not None:
            await self.local.stop()
        if self._tls is not None:
            self._tls.close()
            self._tls = None

    async def stop(self) -> dict[str, object]:
        """Stop accepting, relaying and delivering; returns the queue's counts (with local
        delivery, also its counts; with AUTH, the failed logins), and what faults, outages and
        limits did."""
        await self._close()
        await self.relay.stop()
        stats = self.relay.stats.as_dict()
        stats.update(self.fault_stats.as_dict())
        if self.local is not None:
            stats.update(self.local.stats.as_dict())
        if self.auth is not None:
            stats["auth_failed"] = self.auth.failures
        if self.filter is not None:
            stats.update(self.filter.stats.as_dict())
        return stats
