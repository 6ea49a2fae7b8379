"""``mailsla selftest``: mailsla's own speed and memory against smtp-source, smtp-sink and
Postfix (or, with ``--fast-paths``, each fast path against the library it replaced)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import uvloop
from rich.console import Console

from bench.errors import UsageError


@click.command()
@click.option(
    "--rounds",
    default=3,
    show_default=True,
    type=click.IntRange(1, 20),
    help="A/B rounds per figure (medians are compared).",
)
@click.option("--quick", is_flag=True, help="Smaller loads (a rough look in about a minute).")
@click.option(
    "--memory-messages",
    type=click.IntRange(1000, 10_000_000),
    default=None,
    help="Messages in the memory run (default 1,000,000; 100,000 with --quick).",
)
@click.option(
    "--fast-paths",
    is_flag=True,
    help="Instead: each of mailsla's own fast paths against the library it replaced "
    "(aiosmtplib, aiosmtpd, hdrh), about 75 seconds.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to save the table as JSON (default results/selftest-<UTC time>.json, "
    "or results/fastpaths-<UTC time>.json).",
)
def selftest(
    rounds: int, quick: bool, memory_messages: int | None, fast_paths: bool, out: Path | None
) -> None:
    """Measure mailsla's own speed and memory against smtp-source, smtp-sink and Postfix."""
    from bench.selftest.fastpaths import run_fast_paths
    from bench.selftest.suite import run_selftest
    from bench.selftest.table import print_table, save

    if fast_paths and memory_messages is not None:
        raise UsageError(
            "selftest: --memory-messages is for the memory run, which --fast-paths skips"
        )
    err = Console(stderr=True, highlight=False)
    n_mem = memory_messages or (100_000 if quick else 1_000_000)
    if fast_paths:
        figs = uvloop.run(run_fast_paths(rounds, quick, err.print))
    else:
        figs = uvloop.run(run_selftest(rounds, quick, err.print, n_mem))
    print_table(Console(highlight=False, width=None if sys.stdout.isatty() else 160), figs)
    kind = "fastpaths" if fast_paths else "selftest"
    path = save(figs, out, rounds=rounds, quick=quick, kind=kind)
    click.echo(f"saved: {path}")
