"""Stage faults of the fake MTA, observed by a raw SMTP client over real sockets (port 0).

Every stage × kind with probability 1, probability 0, a binomial share, reproducibility, the
share of users aimed at, accept_drop, and the pure parts (parsing, validation). Outages and the
rate and queue limits: tests/fakemta/test_fakemta_outages.py.
"""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiosmtplib
import pytest

from bench.config.delays import Delay, parse_delay
from bench.config.faults import (
    STAGES,
    Outage,
    StageFault,
    check_faults,
    check_outages,
    parse_fault,
    parse_outage,
)
from bench.core.message import MessageFactory
from bench.observe.postoffice import PostOffice
from fakemta.faults import FaultPlan, closing_reply, fault_reply, user_share
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import Arrivals, until
from tests.faultkit import Raw, StartMta, mta_starter

BODY = "Subject: faults\r\n\r\nhello\r\n."
NORMAL = {
    "connect": "220",
    "banner": "220",
    "ehlo": "250",
    "starttls": "220",
    "auth": "235",
    "mail": "250",
    "rcpt": "250",
    "data": "354",
    "body": "250",  # the dot reply, once the (delayed) body has been read
    "dot": "250",
    "rset": "250",
    "noop": "250",
    "vrfy": "252",
    "quit": "221",
}
COMMANDS = {
    "ehlo": "EHLO client.test",
    "starttls": "STARTTLS",
    "auth": "AUTH PLAIN " + base64.b64encode(b"\0alice\0s3cret").decode(),
    "mail": "MAIL FROM:<a@sender.test>",
    "rcpt": "RCPT TO:<user1@remote.test>",
    "data": "DATA",
    "dot": BODY,
    "rset": "RSET",
    "noop": "NOOP",
    "vrfy": "VRFY <user1@remote.test>",
    "quit": "QUIT",
}
# what a session goes through before it reaches each stage
BEFORE = {
    "connect": (),
    "banner": (),
    "ehlo": ("banner",),
    "rcpt": ("banner", "ehlo", "mail"),
    "data": ("banner", "ehlo", "mail", "rcpt"),
    "body": ("banner", "ehlo", "mail", "rcpt", "data"),
    "dot": ("banner", "ehlo", "mail", "rcpt", "data"),
}


@pytest.fixture
async def start_mta(postoffice: tuple[PostOffice, Arrivals]) -> AsyncIterator[StartMta]:
    async with mta_starter(postoffice[0].port) as start:
        yield start


STALL = parse_delay("const(200ms)")
DELAY = parse_delay("const(100ms)")


async def reach(c: Raw, stage: str) -> None:
    """Go through the stages before *stage*, each answered normally."""
    for step in BEFORE.get(stage, ("banner", "ehlo")):
        reply = await c.reply() if step == "banner" else await c.cmd(COMMANDS[step])
        assert reply is not None and reply.startswith(NORMAL[step]), (step, reply)


async def act(c: Raw, stage: str, timeout: float = 5.0) -> str | None:
    """Do what *stage* is about and return the reply to it."""
    if stage in ("connect", "banner", "body"):  # body: the reply right after the 354, if any
        return await c.reply(timeout)
    return await c.cmd(COMMANDS[stage], timeout)


def options_for(stage: str) -> dict[str, Any]:
    if stage == "starttls":
        return {"tls": True}
    if stage == "auth":
        return {"auth_users": (("alice", "s3cret"),)}
    return {}


CASES = [(s, k) for s in STAGES for k in ("4xx", "5xx", "421", "disconnect", "stall", "delay")]


@pytest.mark.parametrize(("stage", "kind"), CASES)
async def test_each_stage_and_kind_is_observed(start_mta: StartMta, stage: str, kind: str) -> None:
    duration = {"stall": STALL, "delay": DELAY}.get(kind)
    code = {"4xx": 450, "5xx": None}.get(kind)  # one custom code, one default
    fault = StageFault(stage, kind, 1.0, code=code, duration=duration)
    mta = await start_mta(faults=(fault,), **options_for(stage))
    c = await Raw.open(mta.port)
    await reach(c, stage)
    t0 = time.monotonic()
    if kind == "delay":  # at "body": the message is read late, so the dot reply is late
        reply = await act(c, "dot" if stage == "body" else stage)
        assert reply is not None and reply.startswith(NORMAL[stage]), reply
        assert time.monotonic() - t0 >= 0.09
    elif kind in ("4xx", "5xx"):
        expected = fault_reply(stage, 450 if kind == "4xx" else 554)
        assert await act(c, stage) == expected
        assert expected.startswith(("450 4.3.0 fakemta: injected", "554 5.3.0 fakemta: injected"))
        if stage in ("connect", "body"):  # the greeting or the aborted DATA: then closed
            assert await c.reply() is None
        elif stage == "banner":  # RFC 5321 3.1: 503 to all but QUIT
            assert (await c.cmd("EHLO client.test") or "").startswith("503 5.5.1")
            assert (await c.cmd("QUIT") or "").startswith("221")
        else:  # the session goes on
            assert (await c.cmd("RSET" if stage == "noop" else "NOOP") or "")[:3] == "250"
    elif kind == "421":
        assert await act(c, stage) == closing_reply(stage)
        assert await c.reply() is None
    elif kind == "disconnect":
        assert await act(c, stage) is None
        assert time.monotonic() - t0 < 0.15
    else:  # stall: no reply for the duration, then closed
        with pytest.raises(TimeoutError):
            await act(c, stage, timeout=0.1)
        assert await c.reply() is None
        assert time.monotonic() - t0 >= 0.19
    c.close()
    stats = await mta.stop()
    assert stats["faults_injected"] == {f"{stage}.{kind}": 1}
    if stage in ("dot", "body") and kind != "delay":
        assert stats["queued"] == 0  # a failed end of DATA queues nothing


async def test_accept_drop_answers_250_and_loses_the_mail(
    start_mta: StartMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    """Dropped for the users aimed at (half), delivered for the others."""
    _, arrivals = postoffice
    f = MessageFactory(
        "drop", size=300, sender="a@s.test", domain="remote.test", users=50, recipients=1
    )
    mta = await start_mta(faults=(StageFault("dot", "accept_drop", 1.0, users=0.5),), seed=3)
    aimed = [s for s in range(50) if user_share(f.recipients_of(s)[0], 3) < 0.5]
    spared = [s for s in range(50) if s not in aimed]
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False, timeout=10)
    await client.connect()
    for seq in (aimed[0], spared[0]):
        errors, reply = await client.sendmail(
            f.sender, f.recipients_of(seq), f.build(seq, f.recipients_of(seq), 0)
        )
        assert not errors and reply.startswith("2.0.0 Ok: queued as")
    await client.quit()
    await arrivals.wait(1)
    await until(lambda: mta.relay.stats.relayed == 1)
    assert [a[0].id for a in arrivals.items if a[0]] == [spared[0]]
    stats = await mta.stop()
    assert stats["dropped"] == 1 and stats["queued"] == 1
    assert stats["faults_injected"] == {"dot.accept_drop": 1}


async def transactions(port: int, n: int, rcpt: Callable[[int], str]) -> list[str]:
    """*n* pipelined MAIL, RCPT, RSET on one connection; returns each RCPT reply's code."""
    c = await Raw.open(port)
    await reach(c, "mail")
    codes: list[str] = []
    for base in range(0, n, 100):
        batch = range(base, min(n, base + 100))
        for i in batch:
            c.send(f"MAIL FROM:<a@sender.test>\r\nRCPT TO:<{rcpt(i)}>\r\nRSET")
        for _ in batch:
            replies = [await c.reply() for _ in range(3)]
            assert all(r is not None for r in replies), replies
            codes.append((replies[1] or "")[:3])
    c.close()
    return codes


async def test_probability_zero_never_fires(start_mta: StartMta) -> None:
    faults = tuple(StageFault(s, "5xx", 0.0) for s in STAGES if s != "starttls")
    mta = await start_mta(faults=faults)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False, timeout=10)
    await client.connect()
    for i in range(50):
        await client.sendmail("a@sender.test", [f"u{i}@remote.test"], b"Subject: x\r\n\r\nx\r\n")
    await client.quit()
    assert set(await transactions(mta.port, 200, lambda i: f"u{i}@remote.test")) == {"250"}
    stats = await mta.stop()
    assert stats["faults_injected"] == {} and stats["queued"] == 50


async def test_share_is_within_a_binomial_bound(start_mta: StartMta) -> None:
    """p = 0.3 over 2,000 transactions (20 connections of 100): within 4 sigma."""
    mta = await start_mta(faults=(StageFault("rcpt", "4xx", 0.3),))
    codes: list[str] = []
    for _ in range(20):
        codes += await transactions(mta.port, 100, lambda i: f"u{i}@remote.test")
    n, p = len(codes), 0.3
    hits = codes.count("451")
    assert hits + codes.count("250") == n == 2000
    assert abs(hits - n * p) <= 4 * math.sqrt(n * p * (1 - p)), hits
    stats = await mta.stop()
    assert stats["faults_injected"] == {"rcpt.4xx": hits}


async def test_same_seed_same_sequence(start_mta: StartMta) -> None:
    faults = (
        StageFault("mail", "4xx", 0.2),
        StageFault("rcpt", "5xx", 0.3),
        StageFault("rcpt", "4xx", 0.1, code=452),
    )
    runs = []
    for seed in (7, 7, 8):
        mta = await start_mta(faults=faults, seed=seed)
        runs.append(
            [await transactions(mta.port, 150, lambda i: f"u{i}@remote.test") for _ in range(3)]
        )
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {"250", "503", "554", "452"} <= {c for conn in runs[0] for c in conn}


async def test_users_aims_at_the_same_half(start_mta: StartMta) -> None:
    users = [f"user{i}@remote.test" for i in range(400)]
    fault = StageFault("rcpt", "5xx", 1.0, users=0.5)
    hit_sets = []
    for _ in range(2):  # two MTAs, two passes each: always the same users
        mta = await start_mta(faults=(fault,), seed=11)
        for _ in range(2):
            codes = await transactions(mta.port, len(users), lambda i: users[i])
            hit_sets.append({u for u, c in zip(users, codes, strict=True) if c == "554"})
    assert all(s == hit_sets[0] for s in hit_sets)
    assert hit_sets[0] == {u for u in users if user_share(u, 11) < 0.5}
    assert abs(len(hit_sets[0]) - 200) <= 4 * math.sqrt(400 * 0.25)


async def test_delay_and_outcome_combine(start_mta: StartMta) -> None:
    """smtp-sink -A: after the 354, wait, then refuse the message without reading it."""
    faults = (StageFault("body", "delay", 1.0, duration=DELAY), StageFault("body", "5xx", 1.0, 550))
    mta = await start_mta(faults=faults)
    c = await Raw.open(mta.port)
    await reach(c, "body")
    t0 = time.monotonic()
    assert await c.reply() == "550 5.3.0 fakemta: injected fault at body"
    assert time.monotonic() - t0 >= 0.09
    assert await c.reply() is None
    c.close()
    stats = await mta.stop()
    assert stats["faults_injected"] == {"body.delay": 1, "body.5xx": 1}


async def test_survives_garbage_with_faults(
    start_mta: StartMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    _, arrivals = postoffice
    faults = (
        StageFault("rcpt", "delay", 1.0, duration=parse_delay("1ms")),
        StageFault("mail", "4xx", 0.0),
        StageFault("dot", "stall", 0.0, duration=STALL),
    )
    mta = await start_mta(faults=faults)
    c = await Raw.open(mta.port)
    assert (await c.reply() or "").startswith("220")
    c.w.write(b"\x00\xff garbage \x80\r\nFOO BAR\r\nMAIL FROM:<<<>>>\r\n")
    replies = [await c.reply() for _ in range(3)]
    assert all((r or "")[:1] == "5" for r in replies), replies
    w3 = (await asyncio.open_connection("127.0.0.1", mta.port))[1]
    w3.write(b"EHLO half")
    w3.close()
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False, timeout=10)
    await client.connect()
    await client.sendmail("a@sender.test", ["u@remote.test"], b"Subject: x\r\n\r\nx\r\n")
    await client.quit()
    await arrivals.wait(1)
    c.close()


def test_parse_fault_and_outage() -> None:
    assert parse_fault("rcpt:4xx:0.1:450") == StageFault("rcpt", "4xx", 0.1, code=450)
    f = parse_fault("dot:stall:0.01:const(5s)")
    assert f.kind == "stall" and f.duration == Delay("const", 5.0, text="const(5s)")
    assert parse_fault("connect:disconnect:1") == StageFault("connect", "disconnect", 1.0)
    assert (
        str(parse_fault("data:delay:0.5:uniform(1ms, 2ms)")) == "data:delay:0.5:uniform(1ms, 2ms)"
    )
    assert parse_outage("30s:10s:refuse") == Outage(30.0, 10.0, "refuse")
    bad_faults = ["rcpt:4xx", "rcpt:4xx:x", "rcpt:4xx:1:abc", "rcpt:disconnect:1:5"]
    bad_faults += ["rcpt:delay:1", "nowhere:4xx:1", "rcpt:4xx:1.5", "rcpt:5xx:1:450"]
    for bad in bad_faults:
        with pytest.raises(ValueError, match=r"rcpt|nowhere"):
            parse_fault(bad)
    for bad in ("30s:10s", "30s:10s:explode", "x:10s:421", "1s:0s:421"):
        with pytest.raises(ValueError):
            parse_outage(bad)


def test_validation() -> None:
    with pytest.raises(ValueError, match="recipients are known only"):
        StageFault("mail", "4xx", 1.0, users=0.5)
    with pytest.raises(ValueError, match="'dot' stage only"):
        StageFault("rcpt", "accept_drop", 1.0)
    with pytest.raises(ValueError, match="needs a duration"):
        StageFault("rcpt", "stall", 1.0)
    with pytest.raises(ValueError, match="takes no duration"):
        StageFault("rcpt", "4xx", 1.0, duration=STALL)
    with pytest.raises(ValueError, match="add up to"):
        check_faults((StageFault("rcpt", "4xx", 0.6), StageFault("rcpt", "421", 0.6)))
    check_faults((StageFault("rcpt", "4xx", 0.6), StageFault("rcpt", "delay", 1.0, duration=STALL)))
    with pytest.raises(ValueError, match="overlap"):
        check_outages((Outage(1, 5, "421"), Outage(3, 1, "stall")))
    with pytest.raises(ValueError, match="queue_limit"):
        FakeMta(FakeMtaConfig(relay_host="127.0.0.1", relay_port=1, queue_limit=0))


def test_plan_is_reproducible_and_users_are_stable() -> None:
    plan = FaultPlan((StageFault("dot", "4xx", 0.5), StageFault("dot", "5xx", 0.25)), seed=5)
    seqs = [[plan.decide("dot", plan.rng(c)) for c in range(300)] for _ in range(2)]
    assert seqs[0] == seqs[1]
    kinds = [d.outcome.kind if d and d.outcome else None for d in seqs[0]]
    assert 100 < kinds.count("4xx") < 200 and 40 < kinds.count("5xx") < 110
    assert plan.decide("rcpt", plan.rng(0)) is None  # no faults there: no draw
    shares = [user_share(f"user{i}@x.test", 5) for i in range(1000)]
    assert all(0 <= s < 1 for s in shares)
    assert shares == [user_share(f"USER{i}@y.test", 5) for i in range(1000)]  # the user part
    assert shares != [user_share(f"user{i}@x.test", 6) for i in range(1000)]
