"""What a run hands the system and its sessions: the fake MTA's configuration, the SMTP
session options and the post office, derived from the scenario; the worker processes it asks
for. Pure but :func:`usable_cores`."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bench.config.faults import Outage, StageFault
from bench.config.scenario import PARENT_METRICS, Scenario, procs
from bench.core.corpus import ClassDraw
from bench.core.correlate import Correlator
from bench.core.fates import FateBooks
from bench.errors import UsageError
from bench.observe.mailboxes import RemoteWatch, Watcher, mailbox_users
from bench.observe.postoffice import ArrivalSink, PostOffice
from bench.observe.postoffice_replies import Refusals
from bench.procs.parent import PostOfficeFleet
from bench.procs.ray_clocks import Node
from bench.procs.ray_fleet import RayPlan
from bench.smtp.limits import Limits
from bench.smtp.options import SessionOptions
from fakemta.server import FakeMtaConfig


class MailboxRoot(Protocol):
    @property
    def root(self) -> object: ...

    serves_imap: bool


def fakemta_config(
    sc: Scenario,
    po_port: int,
    mailboxes: MailboxRoot | None,
    credentials: tuple[str, str] | None,
    po_host: str | None = None,
) -> FakeMtaConfig:
    """The embedded fake MTA for *sc*: relaying to the post office on *po_port* (at *po_host*
    when given: a post office on another host, else ``postoffice.listen``'s), delivering
    locally into *mailboxes* (when the run has inbound traffic), with the scenario's TLS and
    AUTH (its one user is the scenario's)."""
    fm = sc.fakemta
    root = str(mailboxes.root) if mailboxes is not None and mailboxes.root else None
    relay_host = po_host or sc.postoffice.listen[0]
    return FakeMtaConfig(
        relay_host="127.0.0.1" if relay_host == "0.0.0.0" else relay_host,
        relay_port=po_port,
        listen_host=fm.listen[0],
        listen_port=fm.listen[1],
        hostname=fm.hostname,
        relay_domains=(sc.postoffice.domain,),
        processing_delay=fm.processing_delay,
        delivery_workers=fm.delivery_workers,
        seed=sc.seed,
        timeout=sc.load.timeout,
        local_domain=sc.mailbox.domain,
        local_users=tuple(mailbox_users(sc)) if root else (),
        mailbox_root=root,
        delivery_delay=fm.delivery_delay,
        # A throwaway Dovecot reads the Maildirs as another user: files must be readable.
        mailbox_file_mode=0o644 if mailboxes is not None and mailboxes.serves_imap else 0o600,
        inbound_host=fm.inbound[0],
        inbound_port=fm.inbound[1],
        tls=sc.system.tls != "off",
        auth_users=(credentials,) if credentials else (),
        auth_required=credentials is not None,
        faults=tuple(
            StageFault(f.stage, f.kind, f.probability, f.code, f.duration, f.users)
            for f in fm.faults
        ),
        outages=tuple(Outage(o.at, o.duration, o.kind) for o in fm.outages),
        filter=fm.filter.spec() if fm.filter is not None else None,
        max_rate=fm.max_rate,
        queue_limit=fm.queue_limit,
        message_size_limit=fm.message_size_limit,
        recipient_limit=fm.recipient_limit,
    )


def session_options(
    sc: Scenario, ca_file: str | None, credentials: tuple[str, str] | None
) -> SessionOptions:
    """Options of the submission sessions (the send lane)."""
    system, load = sc.system, sc.load
    user, password = credentials or (None, None)
    return SessionOptions(
        ehlo=system.ehlo,
        timeout=load.timeout,
        greeting_timeout=load.greeting_timeout,
        tls=system.tls,
        ca_file=ca_file,
        tls_verify=not system.tls_insecure,
        server_name=system.server_name,
        auth_user=user,
        auth_password=password,
        auth_mechanism=system.auth.mechanism if system.auth else "plain",
        max_per_connection=load.per_connection_cap,
    )


def inbound_options(opts: SessionOptions) -> SessionOptions:
    """The receive lane delivers as a source post office would: no AUTH, STARTTLS when the
    submission side uses it, but only if offered (an MX need not)."""
    return dataclasses.replace(
        opts,
        tls="opportunistic" if opts.tls != "off" else "off",
        auth_user=None,
        auth_password=None,
    )


def resolve_workers(sc: Scenario, cores: int) -> Scenario:
    """*sc* with ``workers = "auto"`` made a number, for a machine of *cores* cores. Pure.

    mailsla takes the whole machine when the system under test is elsewhere, and half of it
    when the system runs here too (the embedded fake MTA, or an address on loopback): a
    generator that takes the system's CPU measures itself. The generator gets that share;
    the post office, which only receives, half of it. Inbound traffic, and live thresholds
    on generator metrics, need the generator in one process, so "auto" gives 1 there; and
    never more processes than sessions (each needs one of its own). On a
    2-core machine with a local system this is one process each, which the selftest found
    fastest (docs/performance.md).
    """
    share = cores if not _local(sc) else cores // 2
    load, po = sc.load, sc.postoffice
    gen = load.workers
    if gen == "auto":
        live_gen = any(t.live and t.metric not in PARENT_METRICS for t in sc.sla.thresholds)
        gen = 1 if "receive" in sc.directions or live_gen else max(1, share)
        gen = min(gen, load.sessions)  # each process needs a session of its own
    post = po.workers
    if post == "auto":
        post = max(1, share // 2)
    return sc.model_copy(
        update={
            "load": load.model_copy(update={"workers": gen}),
            "postoffice": po.model_copy(update={"workers": post}),
        }
    )


def _local(sc: Scenario) -> bool:
    if sc.system.kind == "fakemta" or sc.system.submit is None:
        return True
    host = sc.system.submit[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a name: assume elsewhere
        return False


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# The post office takes whatever a scenario can send (message.size is at most 50 MiB): it is
# the instrument, not the system under test; the other limits are Postfix's.
POSTOFFICE_LIMITS = Limits(message_size=64 << 20)


def attach_fates(sc: Scenario, books: list[Correlator]) -> None:
    """Labelled traffic: each lane's books keep the fate of each class (core.fates)."""
    draw = ClassDraw.of(sc)
    if draw is not None:
        for corr in books:
            corr.fates = FateBooks(draw)


def make_postoffice(
    sc: Scenario,
    corr: Correlator,
    run_id: str,
    key: bytes,
    on_arrival: ArrivalSink,
    on_batch: Callable[[], None],
    ray: RayPlan | None = None,
) -> PostOffice | PostOfficeFleet:
    """The run's destination post office: ``postoffice.workers`` processes of its own feeding
    *corr* in batches (then *on_batch*), or, with ``postoffice.isolate = false`` and one
    worker, in this process's loop, calling *on_arrival* per message; or, on Ray with
    ``--ray-postoffice``, actors on the nodes it names (bench.procs.ray_postoffice)."""
    pc = sc.postoffice
    if ray is not None and ray.postoffice is not None:
        from bench.procs.ray_postoffice import RayPostOfficeFleet

        remote = RayPostOfficeFleet(corr, sc, run_id, key, ray.postoffice)
        remote.on_arrivals = on_batch
        ray.postoffice_fleet = remote
        return remote
    if pc.isolate or procs(pc.workers) > 1:
        fleet = PostOfficeFleet(corr, sc, run_id, key)
        fleet.on_arrivals = on_batch
        return fleet
    return PostOffice(
        pc.domain,
        on_arrival,
        host=pc.listen[0],
        port=pc.listen[1],
        hostname=pc.hostname,
        refusals=Refusals(pc.defer, pc.refuse, sc.seed) if pc.defer or pc.refuse else None,
        limits=POSTOFFICE_LIMITS,
        read_marks=sc.message.mix is not None,
    )


def remote_watch(
    sc: Scenario,
    ray: RayPlan | None,
    corr: Correlator,
    run_id: str,
    key: bytes,
    on_batch: Callable[[], None],
) -> RemoteWatch | None:
    """With ``--ray-watcher NODE``: what makes the receive lane's Maildir watcher an actor on
    that node, feeding *corr* in batches (then *on_batch*); None: the watcher runs here."""
    if ray is None or ray.watcher is None:
        return None
    node = ray.watcher

    def make(maildirs: list[Path], junk: list[Path], root: Path | None) -> Watcher:
        from bench.procs.ray_watcher import RayMaildirWatcher

        w = RayMaildirWatcher.for_maildirs(
            node, maildirs, junk, root, sc=sc, run_id=run_id, key=key, corr=corr, on_batch=on_batch
        )
        ray.watcher_actor = w
        return w

    return make


def system_info(sc: Scenario, cores: int, actors: int | None = None) -> dict[str, Any]:
    """What a run measures and with what, as result.json's ``run.system`` starts out (the
    runner adds the addresses as it starts each part); *actors*: a run on Ray's generator
    actors, which stand for ``load.workers``."""
    system = sc.system
    return {
        "kind": system.kind,
        "tls": system.tls,
        "auth": system.auth.mechanism if system.auth else None,
        "cores": cores,
        "workers": {
            "load": sc.load.workers if actors is None else actors,
            "postoffice": sc.postoffice.workers,
        },
    }


def refusal_counts(po: PostOffice | PostOfficeFleet) -> dict[str, int] | None:
    """The post office's on-purpose refusals (``postoffice.defer`` / ``refuse``), for
    result.json; None when it refuses nothing on purpose."""
    r = po.handler.refusals if isinstance(po, PostOffice) else po.refusals
    return None if r is None else {"deferred": r.deferred, "refused": r.refused}


def ray_placement(nodes: list[Node], workers: int | str, sessions: int) -> list[Node]:
    """The node of each generator actor of a run on Ray. Pure. ``"auto"``: one actor per CPU
    of each node (but no more actors than sessions: each needs one of its own); a number:
    that many. Either way dealt round the nodes, a CPU at a time: node 0's first CPU, node
    1's first, ..., then their second ones. Raises :class:`UsageError` on a cluster with no
    node."""
    if not nodes:
        raise UsageError("--ray: the Ray cluster has no live node")
    depth = max(max(n.cpus, 1) for n in nodes)
    dealt = [n for i in range(depth) for n in nodes if max(n.cpus, 1) > i]
    count = min(len(dealt), sessions) if workers == "auto" else int(workers)
    return [dealt[k % len(dealt)] for k in range(count)]
