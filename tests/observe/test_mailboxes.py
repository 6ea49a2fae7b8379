"""The run's mailboxes: making 100,000 of them is bounded, gives way to a stop (Ctrl-C) between
two of them, and leaves no temporary folder behind."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.config.scenario import load
from bench.errors import StartupError
from bench.observe import mailboxes as mailboxes_mod
from bench.observe.mailboxes import Mailboxes

RECEIVE = Path(__file__).resolve().parents[2] / "scenarios" / "receive.toml"


async def test_making_many_mailboxes_stops_when_asked_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sc = load(RECEIVE, ["message.users=100000"])
    boxes = Mailboxes(sc, lambda ident, ns: None, None)
    root = boxes.root
    assert root is not None and root.is_dir()
    begun = threading.Event()
    make = mailboxes_mod.make_maildir

    def counted(*args: Any, **kw: Any) -> None:
        make(*args, **kw)
        begun.set()

    monkeypatch.setattr(mailboxes_mod, "make_maildir", counted)
    starting = asyncio.ensure_future(boxes.start())
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, begun.wait, 30)  # the making has begun
    boxes.abandon()  # what the runner does on Ctrl-C
    with pytest.raises(StartupError, match="stopped while making the mailboxes"):
        await asyncio.wait_for(starting, 30)
    made = sum(1 for _ in root.iterdir())
    assert 0 < made < 100_000  # it stopped part-way, not after all of them
    boxes.cleanup()
    assert not root.exists()
