"""The generator's fast path (bench/load/replychain.py) and the pacer that wakes it
(bench/timing/pacer.py): every message ends in exactly one state, matched to the right reply, never
sent early."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from bench.core.books import GenRecorder
from bench.core.message import MessageFactory
from bench.load import replychain as chain_mod
from bench.load.generator import Generator, make_session
from bench.smtp.options import SessionOptions
from bench.smtp.pipesession import PipelinedSession
from bench.timing.pacer import Pacer
from tests.smtpscript import STALL, Script, ScriptedServer

PIPE_EHLO = "250-script.test\r\n250-PIPELINING\r\n250 8BITMIME"
USERS = 9
MS = 1_000_000


def fate(seq: int) -> tuple[str, str, int]:
    """What the scripted server does to message *seq* (by its recipient or its id)."""
    if seq % USERS == 3:
        return ("rejected", "rcpt", 550)
    if seq % 5 == 0:
        return ("rejected", "dot", 554)
    if seq % 7 == 0:
        return ("rejected", "dot", 452)
    return ("accepted", "dot", 250)


def rule(stage: str, arg: bytes) -> str | None:
    if stage == "rcpt" and b"<user3@" in arg:
        return "550 5.1.1 no such user"
    if stage == "dot":
        i = arg.index(b"X-Mailsla-Id: ") + len(b"X-Mailsla-Id: ")
        seq = int(arg[i : i + 10])
        if seq % 5 == 0:
            return "554 5.7.1 content rejected"
        if seq % 7 == 0:
            return "452 4.3.1 try later"
    return None


class Spy(GenRecorder):
    """A GenRecorder that also keeps each send's planned and start times."""

    def __init__(self) -> None:
        super().__init__(late_after_ns=10**9)
        self.sends: dict[int, tuple[int, int]] = {}
        self.ended: dict[int, tuple[str, str, int]] = {}
        self.reached = asyncio.Event()  # set once sent and accepted reach the goal below
        self.goal = (1 << 62, 1 << 62)

    def _check(self) -> None:
        if self.counts.sent >= self.goal[0] and self.counts.accepted >= self.goal[1]:
            self.reached.set()

    def on_sent(self, seq: int, planned_ns: int, start_ns: int) -> None:
        assert seq not in self.sends, f"message {seq} sent twice"
        self.sends[seq] = (planned_ns, start_ns)
        super().on_sent(seq, planned_ns, start_ns)
        self._check()

    def on_accepted(self, seq: int, planned_ns: int, start_ns: int, accepted_ns: int) -> None:
        self._end(seq, ("accepted", "dot", 250))
        super().on_accepted(seq, planned_ns, start_ns, accepted_ns)
        self._check()

    def on_rejected(self, seq: int, stage: str, code: int) -> None:
        self._end(seq, ("rejected", stage, code))
        super().on_rejected(seq, stage, code)

    def on_failed(self, seq: int, stage: str, error: str) -> None:
        self._end(seq, ("failed", stage, 0))
        super().on_failed(seq, stage, error)

    def _end(self, seq: int, what: tuple[str, str, int]) -> None:
        assert seq in self.sends and seq not in self.ended, f"message {seq} ended twice"
        self.ended[seq] = what

    def balanced(self) -> bool:
        c = self.counts
        return c.sent == c.accepted + c.rejected + c.failed and (c.planned == c.sent + c.not_sent)


def generator(
    port: int,
    rec: Spy,
    *,
    sessions: int = 2,
    depth: int = 2,
    schedule: Iterator[tuple[int, int]] | None = None,
    max_messages: int | None = None,
    seconds: float = 30.0,
    timeout: float = 5.0,
) -> Generator:
    now = time.monotonic_ns()
    opts = SessionOptions(ehlo="c.test", timeout=timeout)
    return Generator(
        correlator=rec,
        factory=MessageFactory(
            "chain", size=300, sender="s@a.test", domain="remote.test", users=USERS, recipients=1
        ),
        session_factory=lambda: make_session("pipelined", "127.0.0.1", port, opts, None),
        sessions=sessions,
        depth=depth,
        schedule=schedule,
        start_ns=now,
        start_wall_ns=time.time_ns(),
        end_ns=now + round(seconds * 1e9),
        max_messages=max_messages,
    )


async def test_chained_replies_go_to_the_right_message_under_injected_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = 0
    real_run = chain_mod.Chain.run

    async def counted(self: chain_mod.Chain, seq: int, planned_ns: int) -> object:
        nonlocal runs
        runs += 1
        return await real_run(self, seq, planned_ns)

    monkeypatch.setattr(chain_mod.Chain, "run", counted)
    server = ScriptedServer(Script(ehlo=PIPE_EHLO, rule=rule))
    port = await server.start()
    rec = Spy()
    await generator(port, rec, max_messages=300).run()
    await server.stop()
    assert rec.ended == {seq: fate(seq) for seq in range(300)}
    assert rec.balanced() and rec.counts.sent == 300
    # Rejections leave the connection usable: the chains carried nearly every message
    # without waking their worker coroutines (4 workers; one wake-up each at the start).
    assert runs <= 8, runs


async def test_open_model_never_sends_before_the_planned_time() -> None:
    server = ScriptedServer(Script(ehlo=PIPE_EHLO))
    port = await server.start()
    rec = Spy()
    # 200 sends, 0.5 ms apart with bursts of equal times, 20 ms after the start
    plan = ((i, 20 * MS + (i // 4) * 2 * MS) for i in range(200))
    await generator(port, rec, sessions=3, depth=1, schedule=plan).run()
    await server.stop()
    assert rec.balanced() and rec.counts.sent == 200
    assert all(start >= planned for planned, start in rec.sends.values())


async def test_stop_counts_waiting_chains_as_not_sent() -> None:
    server = ScriptedServer(Script(ehlo=PIPE_EHLO))
    port = await server.start()
    rec = Spy()
    rec.goal = (0, 10)
    plan = ((i, i * 10 * MS) for i in range(1000))  # 10 s of sends, 100 a second
    gen = generator(port, rec, sessions=4, depth=1, schedule=plan)
    task = asyncio.ensure_future(gen.run())
    await asyncio.wait_for(rec.reached.wait(), 10)
    gen.stop()
    await task
    await server.stop()
    c = rec.counts
    assert c.planned == 1000 and c.sent + c.not_sent == 1000 and c.not_sent > 900
    assert c.sent == c.accepted + c.rejected + c.failed


async def test_cancel_records_messages_in_flight_as_interrupted() -> None:
    stalled = asyncio.Event()
    stalls = 0

    def stall_late(stage: str, arg: bytes) -> str | None:
        """Messages 0-19 pass (so chains carry the later ones); then every end of data
        stalls."""
        nonlocal stalls
        if stage == "dot" and int(arg.split(b"X-Mailsla-Id: ")[1][:10]) >= 20:
            stalls += 1
            if stalls == 2:  # one on each connection
                stalled.set()
            return STALL
        return None

    server = ScriptedServer(Script(ehlo=PIPE_EHLO, rule=stall_late))
    port = await server.start()
    rec = Spy()
    gen = generator(port, rec, sessions=2, depth=2, max_messages=100)
    task = asyncio.ensure_future(gen.run())
    await asyncio.wait_for(stalled.wait(), 10)
    gen.cancel()
    await task  # a cancelled generator ends normally, every message booked
    await server.stop()
    assert rec.balanced() and set(rec.ended) == set(rec.sends)
    assert rec.counts.accepted == 20 and rec.counts.sent == 24
    assert rec.outcomes.failed and set(rec.outcomes.failed) <= {
        ("dot", "interrupted"),
        ("mail", "interrupted"),
        ("data", "interrupted"),
    }


async def test_a_dropped_connection_breaks_the_chain_and_the_next_send_reconnects() -> None:
    closes = {"n": 0}

    def drop_some(stage: str, arg: bytes) -> str | None:
        if stage == "dot" and b"X-Mailsla-Id: 00000000" in arg and closes["n"] < 3:
            closes["n"] += 1
            return "421 4.3.2 going away"
        return None

    server = ScriptedServer(Script(ehlo=PIPE_EHLO, rule=drop_some))
    port = await server.start()
    rec = Spy()
    await generator(port, rec, sessions=1, depth=2, max_messages=120).run()
    await server.stop()
    assert rec.balanced() and rec.counts.sent == 120
    assert set(rec.ended) == set(range(120))
    assert server.connections >= 2  # reopened after the 421
    assert rec.counts.accepted >= 100


# -- the pacer ----------------------------------------------------------------------------


@pytest.mark.parametrize("precise", [True, False])
async def test_pacer_calls_in_time_order_never_early_and_skips_cancelled(precise: bool) -> None:
    # timerfd=False: the loop-timer fallback used where there is no timerfd
    pacer = Pacer(asyncio.get_running_loop(), timerfd=precise)
    assert pacer.precise == precise
    base = time.monotonic_ns() + 5 * MS
    fired: list[tuple[int, int]] = []
    done = asyncio.get_running_loop().create_future()
    whens = [base + d * 300_000 for d in (7, 0, 3, 3, 12, 1, 9)]  # 0.3 ms steps, with a tie
    cancelled = pacer.call_at(base + 2 * 300_000, lambda: fired.append((-1, 0)))
    for k, when in enumerate(whens):

        def cb(k: int = k, when: int = when) -> None:
            fired.append((when, time.monotonic_ns()))
            if len(fired) == len(whens):
                done.set_result(None)

        pacer.call_at(when, cb)
    cancelled.cancel()
    await asyncio.wait_for(done, 5)
    pacer.close()
    assert [w for w, _ in fired] == sorted(whens)
    assert all(t >= w for w, t in fired)


async def test_a_session_closed_under_the_chain_still_ends_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = PipelinedSession.submit_now
    calls = 0

    def flaky(self: PipelinedSession, *args: object) -> object:
        nonlocal calls
        calls += 1
        return None if calls == 5 else real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(PipelinedSession, "submit_now", flaky)
    server = ScriptedServer(Script(ehlo=PIPE_EHLO))
    port = await server.start()
    rec = Spy()
    await generator(port, rec, sessions=1, depth=1, max_messages=40).run()
    await server.stop()
    assert rec.balanced() and rec.counts.sent == 40
    assert rec.outcomes.failed == {("mail", "disconnected"): 1}
    assert rec.counts.accepted == 39


@pytest.mark.parametrize("advertised", [True, False])
async def test_size_is_declared_when_offered_and_a_smaller_limit_refuses_at_mail(
    advertised: bool,
) -> None:
    """RFC 1870: with SIZE offered, each MAIL FROM declares the message's size (an upper bound
    of the run's messages), so a server with a smaller limit says 552 before any body is
    sent; without SIZE, none is declared."""
    mails: list[bytes] = []

    def limit(stage: str, arg: bytes) -> str | None:
        if stage == "mail":
            mails.append(arg)
            size = arg.upper().partition(b"SIZE=")[2]
            if size and int(size) > 100:
                return "552 5.3.4 Message size exceeds fixed limit"
        return None

    ehlo = PIPE_EHLO.replace("250 8BITMIME", "250-SIZE 100\r\n250 8BITMIME")
    script = Script(ehlo=ehlo if advertised else PIPE_EHLO, rule=limit)
    server = ScriptedServer(script)
    port = await server.start()
    rec = Spy()
    await generator(port, rec, sessions=1, depth=1, max_messages=20).run()
    await server.stop()
    assert rec.balanced() and rec.counts.sent == 20
    if advertised:
        assert all(b" SIZE=" in m for m in mails), mails[:2]
        assert rec.counts.rejected == 20 and not script.messages  # no body went out
        assert set(rec.outcomes.rejected) == {("mail", 552)}
    else:
        assert not any(b"SIZE=" in m for m in mails)
        assert rec.counts.accepted == 20
