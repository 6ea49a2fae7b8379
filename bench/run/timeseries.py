"""A run's time series: every interval, each latency metric's interval histogram (appended to
``metrics.hlog`` as the run goes) and the message counts (``timeseries.csv``, written at the
end, when every metric's column is known).

The runner calls :meth:`TimeSeries.take` on each 1-second tick (it returns the pieces, for the
live view), :meth:`TimeSeries.tick` to close an interval when one is due, and
:meth:`TimeSeries.finish` once, after the run, whatever its outcome.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TextIO

from hdrh.histogram import HdrHistogram

from bench.config.scenario import PARENT_METRICS, Scenario, procs
from bench.config.thresholds import Threshold
from bench.config.units import format_duration
from bench.core.hdr import new_histogram
from bench.core.metrics import Metric
from bench.run.intervallog import (
    EMPTY,
    HistStats,
    Interval,
    IntervalStat,
    empty_payload,
    header_lines,
    interval_line,
    interval_stat,
    last_window,
    windows,
)

HLOG_FILE = "metrics.hlog"
CSV_FILE = "timeseries.csv"
COUNT_COLUMNS = ("planned", "sent", "accepted", "delivered", "failed", "rejected")
STAT_COLUMNS = ("p50_s", "p99_s", "max_s")
EARLY_S = 0.05  # a tick this close to an interval's end closes it


def series_for(sc: Scenario, out_dir: Path, run_id: str) -> TimeSeries | None:
    """The run's time series, or None when nothing needs it (no files, no windowed or
    abort_on_fail thresholds)."""
    res, thresholds = sc.results, sc.sla.thresholds
    windowed = {t.metric for t in thresholds if t.window_s is not None}
    if not (res.hlog or res.csv or windowed or any(t.abort_on_fail for t in thresholds)):
        return None
    comments = [f"mailsla run {run_id}; interval {format_duration(res.interval)}"]
    only = None
    if procs(sc.load.workers) > 1:
        only = PARENT_METRICS
        comments.append(
            f"load.workers = {sc.load.workers}: generator worker processes report their "
            f"metrics at the end of the run; only {', '.join(PARENT_METRICS)} are logged "
            "per interval"
        )
    return TimeSeries(
        out_dir,
        res.interval,
        hlog=res.hlog,
        csv=res.csv,
        keep=windowed,
        only=only,
        comments=comments,
    )


def csv_header(names: Iterable[str]) -> list[str]:
    """``t_s``, the counts, then ``<metric>.p50_s``, ``.p99_s``, ``.max_s`` per metric."""
    return ["t_s", *COUNT_COLUMNS, *(f"{n}.{s}" for n in names for s in STAT_COLUMNS)]


def csv_row(iv: Interval, names: Iterable[str]) -> list[str]:
    """One interval: its end (seconds from the start), cumulative counts, its statistics
    (empty cells when the metric had no values in it)."""
    row = [f"{iv.end_s:.3f}", *(str(iv.counts.get(k, 0)) for k in COUNT_COLUMNS)]
    for n in names:
        st = iv.stats.get(n, EMPTY)
        row += ["" if v is None else f"{v:.6f}" for v in (st.p50_s, st.p99_s, st.max_s)]
    return row


def write_csv(out: TextIO, intervals: Sequence[Interval], names: Sequence[str]) -> None:
    w = csv.writer(out, lineterminator="\n")
    w.writerow(csv_header(names))
    for iv in intervals:
        w.writerow(csv_row(iv, names))


class TimeSeries:
    """Collects interval histograms and counts; writes the log and the CSV into *out_dir*.

    *only*: log just these metrics (worker processes report the others at the end);
    *keep*: metrics whose encoded histograms stay in memory, for windowed thresholds.
    """

    def __init__(
        self,
        out_dir: Path,
        interval_s: float,
        *,
        hlog: bool = True,
        csv: bool = True,
        keep: Iterable[str] = (),
        only: Iterable[str] | None = None,
        comments: Sequence[str] = (),
    ) -> None:
        self.out_dir, self.interval_s = out_dir, interval_s
        self.hlog, self.csv = hlog, csv
        self.keep = frozenset(keep)
        self.only = frozenset(only) if only is not None else None
        self.comments = tuple(comments)
        self.intervals: list[Interval] = []
        self.names: dict[str, None] = {}  # logged metrics, in order of appearance
        self.started = False
        self._t0 = 0.0
        self._last = 0.0  # the open interval's start, seconds from the start
        self._next = interval_s  # when it is due to close
        self._seen: dict[str, int] = {}  # each metric's count at its last take
        self._acc: dict[str, HdrHistogram] = {}  # the open interval, by metric
        self._owned: set[str] = set()  # _acc entries that are ours to add to
        self._log: TextIO | None = None
        self.dropped: list[str] = []  # optional files given up (a full disk): said, not raised

    def start(self, now_s: float, epoch_s: float) -> None:
        """The run's start (monotonic *now_s*, wall clock *epoch_s*): open the log."""
        self.started, self._t0 = True, now_s
        if self.hlog:
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
                self._log = open(self.out_dir / HLOG_FILE, "w", encoding="utf-8")  # noqa: SIM115
                self._log.write("\n".join(header_lines(epoch_s, self.comments)) + "\n")
                self._log.flush()
            except OSError as exc:
                self._drop_log(f"{HLOG_FILE}: cannot write ({exc.strerror or exc})")

    def elapsed(self, now_s: float) -> float:
        return now_s - self._t0

    def take(self, metrics: Mapping[str, Metric]) -> dict[str, HdrHistogram]:
        """Take each metric's values since the last take into the open interval; returns the
        non-empty pieces (the caller may keep them: they are never added to)."""
        pieces: dict[str, HdrHistogram] = {}
        for _ in self.take_steps(metrics, pieces):
            pass
        return pieces

    def take_steps(
        self, metrics: Mapping[str, Metric], pieces: dict[str, HdrHistogram]
    ) -> Iterator[None]:
        """:meth:`take`, one metric at a time, into *pieces*: it yields after each metric that
        recorded values since the last take, so that a caller on the event loop can let the
        sending run between them (a whole take and close cost ~3 ms, which would stall every
        send due meanwhile). Each step leaves the series whole, so stopping between steps
        loses nothing."""
        for name, m in metrics.items():
            if m.interval is None or (self.only is not None and name not in self.only):
                continue
            self.names.setdefault(name, None)
            if m.count == self._seen.get(name, 0):
                continue  # nothing recorded since the last take
            self._seen[name] = m.count
            piece = m.take_interval()
            if piece.get_total_count():
                pieces[name] = piece
                self._add(name, piece)
            yield

    def _add(self, name: str, piece: HdrHistogram) -> None:
        acc = self._acc.get(name)
        if acc is None:
            self._acc[name] = piece
            return
        if name not in self._owned:
            acc = new_histogram()
            acc.add(self._acc[name])
            self._acc[name] = acc
            self._owned.add(name)
        acc.add(piece)

    def tick(self, now_s: float, counts: Mapping[str, int]) -> Interval | None:
        """Close the open interval if it is due; returns it."""
        closed: list[Interval] = []
        for _ in self.tick_steps(now_s, counts, closed):
            pass
        return closed[0] if closed else None

    def tick_steps(
        self, now_s: float, counts: Mapping[str, int], closed: list[Interval]
    ) -> Iterator[None]:
        """:meth:`tick`, yielding after each metric's encoding; the interval closed, if one
        was due, is appended to *closed*. The series changes only at the last step."""
        end = self.elapsed(now_s)
        if end < self._next - EARLY_S:
            return
        yield from self._close_steps(end, counts, closed)
        while self._next <= end + EARLY_S:
            self._next += self.interval_s

    def _close_steps(
        self, end: float, counts: Mapping[str, int], closed: list[Interval]
    ) -> Iterator[None]:
        done: list[tuple[str, str, IntervalStat, int]] = []
        for name in self.names:
            h = self._acc.get(name)
            if h is None:
                done.append((name, empty_payload(), EMPTY, 0))
                continue
            hs = HistStats(h)
            done.append((name, h.encode().decode("ascii"), interval_stat(hs), hs.max_us))
            yield
        closed.append(self._close(end, counts, done))

    def _close(
        self, end: float, counts: Mapping[str, int], done: list[tuple[str, str, IntervalStat, int]]
    ) -> Interval:
        """Close the open interval at *end* with each metric's (name, payload, stat, max)."""
        start, lines = self._last, []
        stats: dict[str, IntervalStat] = {}
        kept: dict[str, str] = {}
        for name, payload, st, max_us in done:
            stats[name] = st
            if name in self.keep:
                kept[name] = payload
            if self._log is not None:
                lines.append(interval_line(name, start, end - start, max_us, payload) + "\n")
        self._acc.clear()
        self._owned.clear()
        if self._log is not None:
            try:
                self._log.write("".join(lines))
                self._log.flush()
            except OSError as exc:  # the results come first: drop the log, say so
                self._drop_log(
                    f"{HLOG_FILE}: cannot write ({exc.strerror or exc}) from {start:.0f}s on"
                )
        iv = Interval(round(start / self.interval_s), start, end - start, dict(counts), stats, kept)
        self.intervals.append(iv)
        self._last = end
        return iv

    def _drop_log(self, why: str) -> None:
        self.dropped.append(why)
        log, self._log = self._log, None
        if log is not None:
            with contextlib.suppress(OSError):
                log.close()

    def close(
        self, now_s: float, epoch_s: float, counts: Mapping[str, int], metrics: Mapping[str, Metric]
    ) -> None:
        """Close the last (partial) interval and the log. A run that never started gets a log
        with the header only. A file that cannot be written is given up (:attr:`dropped`)."""
        try:
            if not self.started:
                self.start(now_s, epoch_s)
            else:
                self.take(metrics)
                end = self.elapsed(now_s)
                if end > self._last or self._acc:
                    for _ in self._close_steps(max(end, self._last), counts, []):
                        pass
        except OSError as exc:
            self._drop_log(f"{HLOG_FILE}: cannot write ({exc.strerror or exc})")
        if self._log is not None:
            try:
                self._log.close()
            except OSError as exc:
                self.dropped.append(f"{HLOG_FILE}: cannot write ({exc.strerror or exc})")
            self._log = None

    def write_csv(self) -> None:
        """Write timeseries.csv (a header row only for a run that never started); a failure
        is given up and said (:attr:`dropped`), as the CSV is an extra beside result.json."""
        if not self.csv:
            return
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / CSV_FILE, "w", encoding="utf-8", newline="") as f:
                write_csv(f, self.intervals, list(self.names))
        except OSError as exc:
            with contextlib.suppress(OSError):  # no half file left behind
                (self.out_dir / CSV_FILE).unlink(missing_ok=True)
            self.dropped.append(f"{CSV_FILE}: cannot write ({exc.strerror or exc})")

    def finish(
        self, now_s: float, epoch_s: float, counts: Mapping[str, int], metrics: Mapping[str, Metric]
    ) -> list[str]:
        """:meth:`close`, then :meth:`write_csv`; the files given up, each with why."""
        self.close(now_s, epoch_s, counts, metrics)
        self.write_csv()
        return self.dropped

    # -- windows for thresholds ---------------------------------------------------------
    def windows(self, window_s: float) -> list[tuple[float, dict[str, HistStats]]]:
        """Tumbling windows of *window_s* over the kept metrics."""
        return windows(self.intervals, window_s, self.interval_s, self.keep)

    def windows_for(
        self, thresholds: Iterable[Threshold]
    ) -> dict[float, list[tuple[float, dict[str, HistStats]]]]:
        """The windows each windowed threshold is judged over, by window length."""
        spans = {t.window_s for t in thresholds if t.window_s is not None}
        return {w: self.windows(w) for w in spans}

    def last_window(self, window_s: float) -> tuple[float, dict[str, HistStats]]:
        """The latest *window_s* of closed intervals over the kept metrics."""
        return last_window(self.intervals, window_s, self.interval_s, self.keep)
