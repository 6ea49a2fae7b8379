"""What the terminal shows while a run is going: a rich live panel on a TTY, or a progress
line every few seconds otherwise."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from bench.report.terminal import fmt_s
from bench.run.results import Snapshot


def _panel(s: Snapshot, title: str) -> Panel:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(justify="right", style="bold")
    grid.add_column()
    done = min(s.elapsed_s, s.duration_s)
    grid.add_row("phase", s.phase)
    grid.add_row("time", f"{done:.0f}s / {s.duration_s:.0f}s")
    grid.add_row("", ProgressBar(total=max(s.duration_s, 1e-9), completed=done, width=40))
    c = s.counts
    of = "" if s.expected is None else f" of ~{s.expected}"  # poisson: the expected count
    grid.add_row(
        "messages",
        f"planned {c['planned']}{of}  sent {c['sent']}  accepted {c['accepted']}"
        f"  delivered {c['delivered']}",
    )
    grid.add_row("in flight", f"sending {s.sending}  awaiting delivery {s.awaiting}")
    grid.add_row("not ok", f"rejected {c['rejected']}  failed {c['failed']}  late {c['late']}")
    grid.add_row("rate", f"{s.rate:.0f} accepted/s")
    if s.window is None:
        grid.add_row(s.window_metric, "no deliveries in the last seconds")
    else:
        p50, p99, mx = s.window
        grid.add_row(
            s.window_metric, f"p50 {fmt_s(p50)}  p99 {fmt_s(p99)}  max {fmt_s(mx)}  (last 5 s)"
        )
    return Panel(grid, title=title, expand=False)


class LiveView:
    """A rich Live panel, updated from runner snapshots."""

    def __init__(self, console: Console, title: str) -> None:
        self.title = title
        self.live = Live(console=console, auto_refresh=False, transient=False)
        self.live.start()

    def started(self, line: str) -> None:
        self.live.console.print(f"mailsla: {line}", soft_wrap=True)

    def update(self, snap: Snapshot) -> None:
        self.live.update(_panel(snap, self.title), refresh=True)

    def close(self) -> None:
        self.live.stop()


class LineView:
    """A progress line on stderr every *every* seconds (for logs and CI)."""

    def __init__(self, every: int = 5) -> None:
        self.every, self._n = every, 0

    def started(self, line: str) -> None:
        print(f"mailsla: {line}", file=sys.stderr, flush=True)

    def update(self, snap: Snapshot) -> None:
        self._n += 1
        if snap.phase != "done" and self._n % self.every:
            return
        c = snap.counts
        w: Any = snap.window
        tail = f" {snap.window_metric} p99 {fmt_s(w[1])}" if w else ""
        print(
            f"[{snap.phase} {snap.elapsed_s:5.0f}s] planned {c['planned']} sent {c['sent']} "
            f"accepted {c['accepted']} delivered {c['delivered']} rejected {c['rejected']} "
            f"failed {c['failed']} awaiting {snap.awaiting}{tail}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        pass
