"""The HTML report's charts, built from a run: percentile spectra from the encoded histograms
in result.json, rates and latency over time from timeseries.csv, and the fault-window strip.
Pure: each chart is an SVG string.
"""

from __future__ import annotations

import bisect
import csv
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.config.names import STAGES, TIME_METRICS
from bench.config.units import format_duration
from bench.core.hdr import bucket_high, buckets, decode
from bench.report.svgplot import (
    SECONDS_MARKS,
    Axis,
    Band,
    HLine,
    Marker,
    Series,
    Span,
    color,
    finite,
    line_chart,
    linear_axis,
    log_axis,
    placeholder,
    short_n,
    short_s,
    strip_chart,
)
from bench.report.terminal import fmt_s
from bench.verdict.sla import EXMAIL_MAX_S, EXMAIL_MEAN_S

SLA_METRICS = ("send_delay", "receive_delay")  # the two delays the exmail SLA bounds
COUNT_COLUMNS = ("planned", "sent", "accepted", "delivered", "failed", "rejected")
LATENCY_STATS = ("p50", "p99", "max")
STEPS_PER_DECADE = 40
MAX_POINTS = 1000  # time-series rows drawn at most (longer runs are merged, see thin())
UNITS_S = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
FAIL, BOUND, THRESHOLD, MUTED = "#d62728", "#444444", "#e08a00", "#888888"
OUTAGE = "#ff7f0e"
WINDOW_COLORS = {"ok": "#b7e4c7", "fault": FAIL, "connectivity fault": "#7f0000"}
_CHECK = re.compile(r"^(?P<metric>.+?)\.(?P<stat>count|mean|min|max|p[0-9]+(?:\.[0-9]+)?)$")


@dataclass(frozen=True, slots=True)
class TimeSeries:
    """timeseries.csv: ``t_s`` and every other column by name (None where blank or not a number)."""

    t: list[float]
    columns: dict[str, list[float | None]]


def _number(cell: str | None) -> float | None:
    try:
        v = float(cell) if cell not in (None, "") else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) else None


def parse_timeseries(lines: Iterable[str]) -> TimeSeries | None:
    """Read timeseries.csv text; None when it has no ``t_s`` column or no rows."""
    reader = csv.DictReader(lines)
    if not reader.fieldnames or "t_s" not in reader.fieldnames:
        return None
    t: list[float] = []
    cols: dict[str, list[float | None]] = {k: [] for k in reader.fieldnames if k != "t_s"}
    for row in reader:
        ts = _number(row.get("t_s"))
        if ts is None:
            continue
        t.append(ts)
        for k, v in cols.items():
            v.append(_number(row.get(k)))
    return TimeSeries(t, cols) if t else None


def thin(ts: TimeSeries, limit: int = MAX_POINTS) -> tuple[TimeSeries, int]:
    """At most *limit* rows: runs of *k* intervals merged into one (cumulative counts at the
    run's end, the largest of each latency statistic); returns the series and *k*."""
    k = math.ceil(len(ts.t) / limit)
    if k <= 1:
        return ts, 1
    ends = [min(i + k, len(ts.t)) - 1 for i in range(0, len(ts.t), k)]
    cols: dict[str, list[float | None]] = {}
    for name, vals in ts.columns.items():
        if name in COUNT_COLUMNS:
            cols[name] = [vals[e] for e in ends]
        else:
            runs = [[v for v in vals[e - k + 1 : e + 1] if v is not None] for e in ends]
            cols[name] = [max(r) if r else None for r in runs]
    return TimeSeries([ts.t[e] for e in ends], cols), k


def spectrum(m: dict[str, Any]) -> list[tuple[float, float]]:
    """Points (1/(1−p), latency in s) along a metric's percentile spectrum, from its encoded
    histogram: log-spaced in 1/(1−p), values as hdrh reports them, clipped to the exact min and
    max, ending at the exact max at 1/(1−p) = count."""
    if not m.get("count") or not m.get("hdr"):
        return []
    h = decode(m["hdr"].encode("ascii"))
    unit = UNITS_S.get(m.get("hdr_unit", "us"), 1e-6)
    cums: list[int] = []
    vals: list[float] = []
    total = 0
    for i, c in buckets(h):
        total += c
        cums.append(total)
        vals.append(bucket_high(h, i) * unit)
    if not total:
        return []
    lo, hi = m.get("min_s") or 0.0, m.get("max_s") or vals[-1]
    out: list[tuple[float, float]] = []
    k = 0
    while (x := 10 ** (k / STEPS_PER_DECADE)) < total:
        target = max(1, int((1 - 1 / x) * total + 0.5))
        v = vals[min(bisect.bisect_left(cums, target), len(vals) - 1)]
        out.append((x, min(max(v, lo), hi)))
        k += 1
    out.append((float(total), hi))
    return out


def _pct_label(x: float) -> str:
    decimals = max(0, round(math.log10(x)) - 2)
    return f"{100 - 100 / x:.{decimals}f}%"


def metric_order(name: str) -> tuple[int, int, str]:
    base = name.removeprefix("inbound.")
    lane = 1 if base != name else 0
    stage = base.removeprefix("stage.")
    if base in TIME_METRICS:
        return lane, TIME_METRICS.index(base), name
    if stage in STAGES:
        return lane, len(TIME_METRICS) + STAGES.index(stage), name
    return lane, 99, name


def _bounds(
    name: str, m: dict[str, Any], checks: Sequence[dict[str, Any]]
) -> tuple[list[HLine], list[Marker]]:
    """Reference lines and markers on a spectrum: the SLA's bounds, the metric's checks (red
    when failed) and its observed mean."""
    lines: dict[tuple[str, float], HLine] = {}
    sla = {("mean", EXMAIL_MEAN_S): "SLA mean ≤ 1m", ("max", EXMAIL_MAX_S): "SLA max ≤ 1h"}
    if name in SLA_METRICS:
        lines.update({k: HLine(k[1], text, BOUND) for k, text in sla.items()})
    markers: list[Marker] = []
    for c in checks:
        match = _CHECK.match(c.get("name", ""))
        if not match or match["metric"] != name or match["stat"] == "count":
            continue
        stat, limit, passed = match["stat"], float(c["limit"]), bool(c.get("pass"))
        text = f"{c['name']} {c['op']} {format_duration(limit)}"
        if c.get("source") == "exmail" and (stat, limit) in sla:
            text = sla[stat, limit]
        col = BOUND if passed and c.get("source") == "exmail" else THRESHOLD if passed else FAIL
        lines[stat, limit] = HLine(limit, text + ("" if passed else " FAILED"), col)
        if stat.startswith("p") and float(stat[1:]) < 100:
            markers.append(Marker(100 / (100 - float(stat[1:])), limit, col, text))
    out = list(lines.values())
    if finite(m.get("mean_s")):
        out.append(HLine(m["mean_s"], f"mean {fmt_s(m['mean_s'])}", MUTED, "2 3"))
    return out, markers


def spectrum_chart(name: str, m: dict[str, Any], checks: Sequence[dict[str, Any]]) -> str:
    """The percentile spectrum of one metric, with its bounds, as an SVG chart."""
    pts = spectrum(m)
    hl, mk = _bounds(name, m, checks)
    ys = [y for _, y in pts if y > 0] + [r.y for r in hl if r.y > 0]
    x = log_axis(1, max(len(pts) and pts[-1][0], 10), _pct_label, "percentile (log of 1/(1−p))")
    y = log_axis(min(ys, default=1e-6), max(ys, default=1.0), short_s, "latency", SECONDS_MARKS)
    pts = [(a, max(b, y.lo)) for a, b in pts]  # a value of 0 sits on the axis
    title = f"{name}: percentile spectrum ({m['count']} values, max {fmt_s(m.get('max_s'))})"
    series = [Series(name, pts, color(0))]
    return line_chart(f"spectrum-{name}", title, x, y, series, hl, markers=mk)


def fault_bands(doc: dict[str, Any]) -> list[Band]:
    a = doc.get("availability") or {}
    w = a.get("window_s") or 0.0
    out = [
        Band(b["start_s"], b["start_s"] + w, FAIL, f"fault window from {b['start_s']:g}s")
        for b in a.get("by_window", [])
        if b.get("fault")
    ]
    out += [
        Band(o["begin_s"], o["end_s"], OUTAGE, f"outage {o['begin_s']:g}s–{o['end_s']:g}s")
        for o in a.get("outages", [])
    ]
    return out


def _time_axis(t: Sequence[float]) -> Axis:
    return linear_axis(min(0.0, *t), max(t), lambda v: f"{v:g}s", "time since the start")


def rates_chart(ts: TimeSeries, bands: Sequence[Band]) -> str:
    """Messages a second per interval, from the cumulative counts of the time series."""
    series: list[Series] = []
    peak = 0.0
    for i, col in enumerate(c for c in COUNT_COLUMNS if c in ts.columns):
        vals = ts.columns[col]
        if col in ("failed", "rejected") and not any(vals):
            continue
        pts: list[tuple[float, float | None]] = []
        prev_t, prev_c = 0.0, 0.0
        for t, c in zip(ts.t, vals, strict=True):
            r = (c - prev_c) / (t - prev_t) if c is not None and t > prev_t else None
            pts.append((t, r))
            if c is not None:
                prev_t, prev_c = t, c
            peak = max(peak, r or 0.0)
        series.append(Series(col, pts, color(i), "4 3" if col == "planned" else ""))
    y = linear_axis(0.0, peak * 1.05, short_n, "messages / s")
    return line_chart("rates", "Messages per second", _time_axis(ts.t), y, series, bands=bands)


def latency_metrics(ts: TimeSeries, with_values: bool = True) -> list[str]:
    """Metrics with latency columns (``<metric>.p50_s`` …) in the time series: those with a
    value in some interval, or (*with_values* false) those with none."""
    names: dict[str, bool] = {}
    for k, vals in ts.columns.items():
        if any(k.endswith(f".{s}_s") for s in LATENCY_STATS):
            name = k.rsplit(".", 1)[0]
            names[name] = names.get(name, False) or any(v is not None for v in vals)
    return sorted((n for n, has in names.items() if has == with_values), key=metric_order)


def latency_chart(name: str, ts: TimeSeries, bands: Sequence[Band]) -> str:
    """p50, p99 and max of one metric per interval; a log scale when they span 100×."""
    series = [
        Series(s, list(zip(ts.t, ts.columns[f"{name}.{s}_s"], strict=True)), color(i))
        for i, s in enumerate(LATENCY_STATS)
        if f"{name}.{s}_s" in ts.columns
    ]
    known = [v for s in series for _, v in s.points if v is not None]
    ys = [v for v in known if v > 0]
    lo, hi = min(ys, default=0.0), max(ys, default=1e-3)
    if ys and hi > 100 * lo:
        y = log_axis(lo, hi, short_s, "latency", SECONDS_MARKS)
        # a value of 0 (a pipelined reply read with the one before it) sits on the axis
        series = [
            Series(s.name, [(t, v if v is None or v > 0 else y.lo) for t, v in s.points], s.color)
            for s in series
        ]
    else:
        y = linear_axis(0.0, hi * 1.05, short_s, "latency")
    title = f"{name} over time" if known else f"{name} over time (no values)"
    return line_chart(f"latency-{name}", title, _time_axis(ts.t), y, series, bands=bands)


def availability_chart(doc: dict[str, Any], t_end: float) -> str:
    """Fault windows (red) and outages as a strip over the run."""
    a = doc.get("availability")
    title = "Fault windows and outages"
    if not a:
        return placeholder("availability", title, "no availability recorded")
    w = a.get("window_s") or 0.0
    wins: list[Span] = []
    for b in a.get("by_window", []):
        kind = "connectivity fault" if b.get("connectivity_fault") else "ok"
        kind = "fault" if b.get("fault") and kind == "ok" else kind
        col = WINDOW_COLORS[kind]
        tip = (
            f"{b['start_s']:g}s–{b['start_s'] + w:g}s: {kind}, {b.get('affected_users', 0)} of "
            f"{b.get('active_users', 0)} active users affected"
        )
        wins.append(Span(b["start_s"], b["start_s"] + w, col, tip))
    outs = [
        Span(
            o["begin_s"],
            o["end_s"],
            OUTAGE,
            f"outage {o['begin_s']:g}s–{o['end_s']:g}s: {o['failed']} of {o['attempts']} "
            f"attempts failed ({o['kind']})",
        )
        for o in a.get("outages", [])
    ]
    end = max([t_end, *(s.x1 for s in wins), *(s.x1 for s in outs)])
    x = linear_axis(0.0, end or 1.0, lambda v: f"{v:g}s", "time since the start (planned)")
    legend = [*WINDOW_COLORS.items(), ("outage", OUTAGE)]
    return strip_chart("availability", title, x, [("windows", wins), ("outages", outs)], legend)
