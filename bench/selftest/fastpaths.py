"""``mailsla selftest --fast-paths``: each of mailsla's own fast paths against the library it
replaced, measured side by side (A B A B …, medians) on this machine.

mailsla prefers well-kept libraries; it has code of its own only where a measurement showed
the library to be the bottleneck. These figures are those measurements, kept runnable: a ratio
under 1 would mean the fast path no longer pays for itself and the library should come back.

- the generator's pipelined client (:mod:`bench.smtp.pipeclient`) against aiosmtplib, both with
  full recording, into smtp-sink;
- the post office's protocol (:mod:`bench.observe.postoffice_protocol`) against aiosmtpd
  with the same hooks, fed by smtp-source;
- the fake MTA's submission protocol (:mod:`fakemta.submission`) and relay client
  (:mod:`fakemta.relayclient`) against aiosmtpd and aiosmtplib, the whole path fed by
  smtp-source (``FakeMtaConfig.fast_paths``);
- the address parser of the fake MTA's aiosmtpd server (:mod:`bench.smtp.aioserver`) against
  aiosmtpd's own, on ordinary addresses;
- histogram recording (:meth:`bench.core.metrics.Metric.record`) against hdrh's ``record_value``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from aiosmtpd.smtp import SMTP

from bench.config.delays import Delay
from bench.core.hdr import HIGHEST_US, new_histogram
from bench.core.metrics import Metric
from bench.run.system_under_test import ChildFakeMta
from bench.selftest.anchors import (
    Counter,
    Sink,
    find_anchor,
    generator_rate,
    generator_run,
)
from bench.selftest.figure import Figure, Progress
from bench.selftest.suite import interleave
from bench.smtp.aioserver import FastSMTP
from fakemta.server import FakeMtaConfig

GOAL = ">= 1.0"  # the fast path must at least keep up with what it replaced

# What a mail system's MAIL and RCPT arguments look like (the parser's hot path).
ADDRESSES = (
    "<load@sender.mailsla.test>",
    "<user42@remote.test>",
    "<user7@remote.test> SIZE=1024",
    "<first.last+tag@sub.domain-x.example>",
    "<o'hara@x.test> BODY=8BITMIME",
)


async def run_fast_paths(rounds: int, quick: bool, say: Progress) -> list[Figure]:
    """Every fast path against the library it replaced; smtp-source and smtp-sink needed."""
    find_anchor("smtp-source")
    find_anchor("smtp-sink")
    n = 3_000 if quick else 10_000
    secs = 2.0 if quick else 4.0
    figs: list[Figure] = []
    async with Sink() as sink:
        f = Figure(
            "generator client: pipelined ÷ aiosmtplib, into smtp-sink, 10 sessions",
            GOAL,
            a_label="pipelined",
            b_label="aiosmtplib",
            note="mailsla's generator, full recording, both ways; pipelined at depth 2, "
            "aiosmtplib one message at a time (load.client)",
        )
        await interleave(
            rounds,
            partial(generator_rate, sink.port, 10, secs),
            partial(_aiosmtplib_rate, sink.port, secs),
            f,
            say,
        )
        figs.append(f)
    figs.append(await _post_office(rounds, n, say))
    figs.append(await _fake_mta(rounds, n // 2, say))
    figs.append(_cpu_figure(rounds, say, *_parsers(quick)))
    figs.append(_cpu_figure(rounds, say, *_recorders(quick)))
    return figs


async def _aiosmtplib_rate(port: int, secs: float) -> float:
    """mailsla's generator on aiosmtplib (``load.client``) into *port*: messages per second."""
    return (await generator_run(port, 10, secs, 1, client="aiosmtplib"))[0]


async def _post_office(rounds: int, n: int, say: Progress) -> Figure:
    f = Figure(
        "post office: own protocol ÷ aiosmtpd, fed by smtp-source, 10 sessions",
        GOAL,
        a_label="bench.observe.postoffice_protocol",
        b_label="aiosmtpd",
        note="the same hooks record every message both ways",
    )
    fast, lib = Counter("fast"), Counter("aiosmtpd")
    await fast.po.start()
    await lib.po.start()
    try:
        await interleave(
            rounds,
            partial(fast.fed_by_source, fast.po.port, n),
            partial(lib.fed_by_source, lib.po.port, n),
            f,
            say,
        )
    finally:
        await fast.po.stop()
        await lib.po.stop()
    return f


async def _fake_mta(rounds: int, n: int, say: Progress) -> Figure:
    f = Figure(
        "fake MTA, whole path: own protocols ÷ aiosmtpd + aiosmtplib, fed by smtp-source",
        GOAL,
        a_label="fastqueue + relayclient",
        b_label="aiosmtpd + aiosmtplib",
        note="zero processing delay; relayed to a post office, counted there",
    )
    counter = Counter()
    await counter.po.start()
    mtas = [
        ChildFakeMta(
            FakeMtaConfig(
                relay_host="127.0.0.1",
                relay_port=counter.po.port,
                processing_delay=Delay("const", 0.0),
                fast_paths=fast,
            )
        )
        for fast in (True, False)
    ]
    try:
        fast_port, lib_port = [await m.start() for m in mtas]
        await interleave(
            rounds,
            partial(counter.fed_by_source, fast_port, n),
            partial(counter.fed_by_source, lib_port, n),
            f,
            say,
        )
    finally:
        for m in mtas:
            await m.stop()
        await counter.po.stop()
    return f


def _cpu_figure(
    rounds: int, say: Progress, f: Figure, a: Callable[[], int], b: Callable[[], int]
) -> Figure:
    """Interleave two CPU-bound loops; each returns how many operations it did."""
    for i in range(rounds):
        f.a.append(round(_per_second(a), 1))
        f.b.append(round(_per_second(b), 1))
        say(f"  {f.name} round {i + 1}/{rounds}: {f.a[-1]:.0f} vs {f.b[-1]:.0f}")
    return f


def _per_second(run: Callable[[], int]) -> float:
    t = time.perf_counter()
    ops = run()
    return ops / (time.perf_counter() - t)


class _Limits:
    """Just enough of an SMTP server for ``_getaddr`` (it reads local_part_limit only)."""

    local_part_limit = 0


def _parsers(quick: bool) -> tuple[Figure, Callable[[], int], Callable[[], int]]:
    reps = 5_000 if quick else 40_000
    f = Figure(
        "address parser: bench.smtp.aioserver ÷ aiosmtpd's, MAIL/RCPT arguments",
        GOAL,
        unit="calls/s",
        a_label="fastsmtp",
        b_label="aiosmtpd",
        note=f"{len(ADDRESSES)} ordinary arguments × {reps:,}; "
        "the same results (tests/smtp/test_fastsmtp.py)",
    )
    return f, partial(_parse_all, FastSMTP._getaddr, reps), partial(_parse_all, SMTP._getaddr, reps)


def _parse_all(parse: Callable[[Any, str], object], reps: int) -> int:
    server = _Limits()
    for _ in range(reps):
        for arg in ADDRESSES:
            parse(server, arg)
    return reps * len(ADDRESSES)


def _recorders(quick: bool) -> tuple[Figure, Callable[[], int], Callable[[], int]]:
    # Latencies as a mail system gives them: mostly under 2 ms, a tail to seconds.
    rng = random.Random(1)
    values_ns = [int(rng.lognormvariate(13.0, 1.5)) for _ in range(20_000 if quick else 200_000)]
    f = Figure(
        "histogram record: bench.core.metrics.Metric ÷ hdrh record_value",
        GOAL,
        unit="records/s",
        a_label="Metric.record",
        b_label="record_value",
        note="the same values; Metric also keeps exact min, max and sum, and an interval histogram",
    )
    # hdrh records microseconds: converted here, outside its timing (Metric converts inside)
    values_us = [min(v // 1000, HIGHEST_US) for v in values_ns]
    return f, partial(_metric_records, values_ns), partial(_hdrh_records, values_us)


def _metric_records(values_ns: Sequence[int]) -> int:
    m = Metric("x", interval=True)
    record = m.record
    for v in values_ns:
        record(v)
    return len(values_ns)


def _hdrh_records(values_us: Sequence[int]) -> int:
    h = new_histogram()
    record = h.record_value
    for v in values_us:
        record(v)
    return len(values_us)
