"""The monitor's month, in one SQLite file (WAL mode): probes with their deadlines and fates,
per-window user sets, encoded HDR histograms per interval, and the outages: runs of consecutive
fault windows (more than :data:`FAULT_SHARE` of the window's users affected, as in a run).

Every change to a probe is one transaction that moves it out of ``inflight`` exactly once
(``UPDATE … WHERE state = 'inflight'``) and, in the same transaction, adds it to its window and
its interval histogram. A crash (SIGKILL) therefore loses nothing already committed and counts
nothing twice: a probe sent before the crash stays ``inflight`` in the file and is resolved by
the restarted monitor when it arrives, or counted lost when its deadline passes.

Time is in nanoseconds from a clock the caller supplies, so tests can run a "month" of windows
in seconds with a short window (``window_s``): each window stands for one SLA minute.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hdrh.histogram import HdrHistogram

from bench.core import hdr
from bench.core.availability import FAULT_SHARE

NS = 1_000_000_000
INFLIGHT, DELIVERED, LATE, LOST, FAILED = "inflight", "delivered", "late", "lost", "failed"
# The monitor stopped while this probe's send was in progress, before the system accepted it:
# no evidence about the system, so it counts in no window and no histogram.
CANCELLED = "cancelled"
FINAL = (DELIVERED, LATE, LOST, FAILED, CANCELLED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS probes (
    id TEXT PRIMARY KEY, direction TEXT NOT NULL, user INTEGER NOT NULL,
    planned_ns INTEGER NOT NULL, deadline_ns INTEGER NOT NULL,
    state TEXT NOT NULL, stage TEXT, send_ns INTEGER, delay_ns INTEGER, resolved_ns INTEGER);
CREATE INDEX IF NOT EXISTS probes_state ON probes (state, deadline_ns);
CREATE TABLE IF NOT EXISTS window_users (
    window INTEGER NOT NULL, user INTEGER NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    affected INTEGER NOT NULL, disconnected INTEGER NOT NULL, PRIMARY KEY (window, user));
CREATE TABLE IF NOT EXISTS histograms (
    interval INTEGER NOT NULL, metric TEXT NOT NULL, encoded TEXT NOT NULL,
    PRIMARY KEY (interval, metric));
CREATE TABLE IF NOT EXISTS outages (
    first_window INTEGER PRIMARY KEY, last_window INTEGER NOT NULL,
    failed INTEGER NOT NULL, lost INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Probe:
    id: str
    direction: str
    user: int
    planned_ns: int
    deadline_ns: int


class Store:
    """One monitor database. *window_s*: length of a window (an SLA minute; shorter in tests);
    histograms are kept per window too."""

    def __init__(self, path: str | Path, window_s: float = 60.0) -> None:
        self.path = Path(path)
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)
        stored = self.meta("window_s")
        if stored is None:
            self.set_meta("window_s", repr(window_s))
            stored = repr(window_s)
        self.window_ns = round(float(stored) * NS)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def window_of(self, t_ns: int) -> int:
        return t_ns // self.window_ns

    # -- probes -------------------------------------------------------------------------
    def add_probe(self, p: Probe) -> None:
        """A probe about to be sent, recorded before it goes (so a crash cannot lose it)."""
        self.db.execute(
            "INSERT OR IGNORE INTO probes (id, direction, user, planned_ns, deadline_ns, state)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (p.id, p.direction, p.user, p.planned_ns, p.deadline_ns, INFLIGHT),
        )

    def sent(self, probe_id: str, send_ns: int) -> None:
        """The probe was accepted after *send_ns* of submission (its send delay)."""
        with self._tx() as db:
            row = db.execute(
                "UPDATE probes SET send_ns = ? WHERE id = ? AND state = ? AND send_ns IS NULL"
                " RETURNING planned_ns, direction",
                (send_ns, probe_id, INFLIGHT),
            ).fetchone()
            if row is not None:
                metric = "submit_latency" if row[1] == "send" else "inbound.submit_latency"
                self._add_value(db, row[0], metric, send_ns)

    def failed(self, probe_id: str, stage: str, connection: bool, now_ns: int) -> bool:
        """Sending failed at *stage*; *connection*: a connection-level failure."""
        return self._finish(probe_id, FAILED, stage, None, now_ns, True, connection)

    def cancelled(self, probe_id: str, now_ns: int) -> bool:
        """The monitor stopped during this probe's send, before the system accepted it."""
        row = self.db.execute(
            "UPDATE probes SET state = ?, resolved_ns = ? WHERE id = ? AND state = ?"
            " AND send_ns IS NULL RETURNING id",
            (CANCELLED, now_ns, probe_id, INFLIGHT),
        ).fetchone()
        return row is not None

    def arrived(self, probe_id: str, delay_ns: int, now_ns: int, late_ns: int) -> bool:
        """The probe arrived *delay_ns* after it was planned; True when this counted it (False:
        unknown, or already resolved — a duplicate)."""
        state = LATE if delay_ns > late_ns else DELIVERED
        return self._finish(probe_id, state, None, delay_ns, now_ns, False, False)

    def expire(self, now_ns: int) -> int:
        """Probes in flight past their deadline become lost; how many."""
        rows = self.db.execute(
            "SELECT id FROM probes WHERE state = ? AND deadline_ns <= ?", (INFLIGHT, now_ns)
        ).fetchall()
        return sum(self._finish(r[0], LOST, None, None, now_ns, True, False) for r in rows)

    def inflight(self) -> list[Probe]:
        rows = self.db.execute(
            "SELECT id, direction, user, planned_ns, deadline_ns FROM probes WHERE state = ?"
            " ORDER BY planned_ns",
            (INFLIGHT,),
        ).fetchall()
        return [Probe(*r) for r in rows]

    def _finish(
        self,
        probe_id: str,
        state: str,
        stage: str | None,
        delay_ns: int | None,
        now_ns: int,
        bad: bool,
        connection: bool,
    ) -> bool:
        with self._tx() as db:
            row = db.execute(
                "UPDATE probes SET state = ?, stage = ?, delay_ns = ?, resolved_ns = ?"
                " WHERE id = ? AND state = ? RETURNING planned_ns, user, direction",
                (state, stage, delay_ns, now_ns, probe_id, INFLIGHT),
            ).fetchone()
            if row is None:
                return False
            planned, user, direction = row
            db.execute(
                "INSERT INTO window_users VALUES (?, ?, 1, ?, ?, ?) ON CONFLICT (window, user)"
                " DO UPDATE SET requests = requests + 1, failed = failed + excluded.failed,"
                " affected = max(affected, excluded.affected),"
                " disconnected = max(disconnected, excluded.disconnected)",
                (self.window_of(planned), user, int(bad), int(bad), int(connection)),
            )
            if delay_ns is not None:
                self._add_value(db, planned, f"{direction}_delay", delay_ns)
            return True

    def _add_value(self, db: sqlite3.Connection, planned_ns: int, metric: str, v_ns: int) -> None:
        interval = self.window_of(planned_ns)
        row = db.execute(
            "SELECT encoded FROM histograms WHERE interval = ? AND metric = ?", (interval, metric)
        ).fetchone()
        h = hdr.new_histogram() if row is None else hdr.decode(row[0])
        h.record_value(min(max(v_ns // 1000, hdr.LOWEST_US), hdr.HIGHEST_US))
        db.execute(
            "INSERT OR REPLACE INTO histograms VALUES (?, ?, ?)",
            (interval, metric, h.encode().decode()),
        )

    # -- outages ------------------------------------------------------------------------
    def refresh_outages(self, since: int, until: int) -> None:
        """Rebuild the outage list over windows *since* ≤ w < *until* (those whose probes may
        still change: the last deadline's worth), joining an outage that runs into *since*."""
        with self._tx() as db:
            row = db.execute(
                "SELECT min(first_window) FROM outages WHERE last_window >= ?", (since - 1,)
            ).fetchone()
            if row[0] is not None:
                since = min(since, int(row[0]))
            db.execute("DELETE FROM outages WHERE last_window >= ?", (since,))
            faults = [
                w
                for w, n, aff in db.execute(
                    "SELECT window, count(*), sum(affected) FROM window_users"
                    " WHERE window >= ? AND window < ? GROUP BY window ORDER BY window",
                    (since, until),
                )
                if aff > FAULT_SHARE * n
            ]
            runs: list[list[int]] = []
            for w in faults:
                if runs and runs[-1][1] == w - 1:
                    runs[-1][1] = w
                else:
                    runs.append([w, w])
            for first, last in runs:
                lo, hi = first * self.window_ns, (last + 1) * self.window_ns
                failed, lost = db.execute(
                    "SELECT count(*) FILTER (WHERE state = ?), count(*) FILTER (WHERE state = ?)"
                    " FROM probes WHERE planned_ns >= ? AND planned_ns < ?",
                    (FAILED, LOST, lo, hi),
                ).fetchone()
                db.execute("INSERT INTO outages VALUES (?, ?, ?, ?)", (first, last, failed, lost))

    def outages(self, first: int, last: int) -> list[tuple[int, int, int, int]]:
        """(first window, last window, probes failed, probes lost) of each outage overlapping
        windows *first* ≤ w < *last*, oldest first."""
        return self.db.execute(
            "SELECT first_window, last_window, failed, lost FROM outages"
            " WHERE last_window >= ? AND first_window < ? ORDER BY first_window",
            (first, last),
        ).fetchall()

    # -- reading ------------------------------------------------------------------------
    def histograms_by_window(self, first: int, last: int) -> dict[int, dict[str, HdrHistogram]]:
        """Per window *first* ≤ w < *last* that holds any, its histograms by metric."""
        out: dict[int, dict[str, HdrHistogram]] = {}
        for interval, metric, enc in self.db.execute(
            "SELECT interval, metric, encoded FROM histograms WHERE interval >= ? AND interval < ?",
            (first, last),
        ):
            out.setdefault(interval, {})[metric] = hdr.decode(enc)
        return out

    def histograms(self, first: int, last: int) -> dict[str, HdrHistogram]:
        """Per metric, the merged histogram of windows *first* ≤ w < *last* (microseconds)."""
        out: dict[str, HdrHistogram] = {}
        for metric, enc in self.db.execute(
            "SELECT metric, encoded FROM histograms WHERE interval >= ? AND interval < ?"
            " ORDER BY interval",
            (first, last),
        ):
            h = out.get(metric)
            if h is None:
                out[metric] = hdr.decode(enc)
            else:
                h.add(hdr.decode(enc))
        return out

    def windows(self, first: int, last: int) -> list[tuple[int, int, int, int, int, int]]:
        """Per window: (window, active users, affected, disconnected, requests, failed)."""
        return self.db.execute(
            "SELECT window, count(*), sum(affected), sum(disconnected), sum(requests),"
            " sum(failed) FROM window_users WHERE window >= ? AND window < ?"
            " GROUP BY window ORDER BY window",
            (first, last),
        ).fetchall()

    def counts(self, first_ns: int, last_ns: int) -> dict[tuple[str, str, str], int]:
        """(direction, state, stage or '') -> probes planned in [first_ns, last_ns)."""
        rows = self.db.execute(
            "SELECT direction, state, coalesce(stage, ''), count(*) FROM probes"
            " WHERE planned_ns >= ? AND planned_ns < ? GROUP BY 1, 2, 3",
            (first_ns, last_ns),
        ).fetchall()
        return {(d, s, g): n for d, s, g, n in rows}
