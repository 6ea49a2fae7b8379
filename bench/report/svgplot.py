"""Inline SVG charts drawn in Python: lines on linear or log axes, and a time strip. Pure.

Every chart is one ``<svg data-plot="ID">`` with a ``<title>``; all text is escaped and no
coordinate is ever NaN or infinite (such points are left out as gaps).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 660, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 46, 40
# Round times for a log axis of seconds: decades up to 10 s, then 1 minute, 10 minutes, 1 hour.
SECONDS_MARKS = (*(10.0**k for k in range(-6, 2)), 60.0, 600.0, 3600.0, 36000.0)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


def finite(v: float | None) -> bool:
    """Whether *v* is a number that can be drawn."""
    return v is not None and math.isfinite(v)


def short_s(v: float) -> str:
    """A tick label for seconds: 50µs, 10ms, 1s, 1m, 1h."""
    a = abs(v)
    if a == 0:
        return "0"
    for limit, f, unit in ((1e-3, 1e6, "µs"), (1, 1e3, "ms"), (60, 1, "s"), (3600, 1 / 60, "m")):
        if a < limit:
            return f"{v * f:.3g}{unit}"
    return f"{v / 3600:.3g}h"


def short_n(v: float) -> str:
    """A tick label for a plain number: 0, 25, 1.5k, 2M."""
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e4:
        return f"{v / 1e3:.3g}k"
    return f"{v:.6g}"


@dataclass(frozen=True, slots=True)
class Axis:
    """A value range mapped onto a side of the plot area, with labelled ticks."""

    lo: float
    hi: float
    log: bool = False
    ticks: tuple[tuple[float, str], ...] = ()
    label: str = ""

    def frac(self, v: float) -> float:
        """Where *v* lies along the axis, 0 to 1 (clamped)."""
        if self.log:
            lo, hi, v = math.log10(self.lo), math.log10(self.hi), math.log10(max(v, self.lo))
        else:
            lo, hi = self.lo, self.hi
        f = (v - lo) / (hi - lo) if hi > lo else 0.5
        return min(max(f, 0.0), 1.0)


def linear_axis(lo: float, hi: float, fmt: Callable[[float], str], label: str = "") -> Axis:
    """A linear axis over [lo, hi] (widened when empty) with 4–8 round ticks."""
    if not hi > lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + step * 1e-9:
        ticks.append((k * step, fmt(k * step)))
        k += 1
    return Axis(lo, hi, False, tuple(ticks), label)


def log_axis(
    lo: float,
    hi: float,
    fmt: Callable[[float], str],
    label: str = "",
    marks: Sequence[float] = (),
) -> Axis:
    """A log axis from the decade at or below *lo* to the one at or above *hi*, with ticks at
    each decade, or at those of *marks* in range."""
    lo = max(lo, 1e-9)
    hi = max(hi, lo * 10)
    a, b = math.floor(math.log10(lo) + 1e-9), math.ceil(math.log10(hi) - 1e-9)
    lo, hi = 10.0**a, 10.0**b
    values = [v for v in marks if lo <= v <= hi] or [10.0**k for k in range(a, b + 1)]
    return Axis(lo, hi, True, tuple((v, fmt(v)) for v in values), label)


@dataclass(frozen=True, slots=True)
class Series:
    """A line; points with a None y are gaps."""

    name: str
    points: Sequence[tuple[float, float | None]]
    color: str
    dash: str = ""


@dataclass(frozen=True, slots=True)
class HLine:
    """A horizontal reference line (a bound, a mean) with its label."""

    y: float
    label: str
    color: str
    dash: str = "6 4"


@dataclass(frozen=True, slots=True)
class Band:
    """A shaded span of x (a fault window, an outage) behind the lines."""

    x0: float
    x1: float
    color: str
    label: str
    opacity: float = 0.15


@dataclass(frozen=True, slots=True)
class Marker:
    """A point drawn as a small circle, with a tooltip."""

    x: float
    y: float
    color: str
    label: str


@dataclass(frozen=True, slots=True)
class Span:
    """One coloured span of a strip row."""

    x0: float
    x1: float
    color: str
    label: str


def _open(plot_id: str, title: str, height: int, width: int = WIDTH) -> list[str]:
    return [
        f'<svg data-plot="{escape(plot_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">',
        f"<title>{escape(title)}</title>",
        f'<text x="{LEFT}" y="16" class="ptitle">{escape(title)}</text>',
    ]


def _xy(x: Axis, y: Axis, px: float, py: float, w: int, h: int) -> tuple[float, float]:
    return LEFT + x.frac(px) * (w - LEFT - RIGHT), h - BOTTOM - y.frac(py) * (h - TOP - BOTTOM)


def _frame(x: Axis, y: Axis, w: int, h: int) -> list[str]:
    x0, x1, y0, y1 = LEFT, w - RIGHT, TOP, h - BOTTOM
    out = [
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" class="frame"/>',
    ]
    for v, text in x.ticks:
        if x.lo <= v <= x.hi:
            px = x0 + x.frac(v) * (x1 - x0)
            anchor = "end" if px > x1 - 20 else "middle"
            out.append(f'<line x1="{px:.1f}" y1="{y0}" x2="{px:.1f}" y2="{y1}" class="grid"/>')
            out.append(
                f'<text x="{px:.1f}" y="{y1 + 14}" text-anchor="{anchor}">{escape(text)}</text>'
            )
    for v, text in y.ticks:
        if y.lo <= v <= y.hi:
            py = y1 - y.frac(v) * (y1 - y0)
            out.append(f'<line x1="{x0}" y1="{py:.1f}" x2="{x1}" y2="{py:.1f}" class="grid"/>')
            out.append(
                f'<text x="{x0 - 4}" y="{py + 4:.1f}" text-anchor="end">{escape(text)}</text>'
            )
    if x.label:
        out.append(
            f'<text x="{(x0 + x1) / 2:.1f}" y="{h - 6}" text-anchor="middle" class="alabel">'
            f"{escape(x.label)}</text>"
        )
    if y.label:
        out.append(
            f'<text x="12" y="{(y0 + y1) / 2:.1f}" text-anchor="middle" class="alabel" '
            f'transform="rotate(-90 12 {(y0 + y1) / 2:.1f})">{escape(y.label)}</text>'
        )
    return out


def _legend(items: Sequence[tuple[str, str, str]], w: int) -> list[str]:
    """Legend entries (name, colour, dash) in one row under the title."""
    out, px = [], float(LEFT)
    for name, color, dash in items:
        if px > w - 60:
            break
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<line x1="{px:.0f}" y1="32" x2="{px + 18:.0f}" y2="32" stroke="{color}" '
            f'stroke-width="2"{d}/>'
        )
        out.append(f'<text x="{px + 22:.0f}" y="36">{escape(name)}</text>')
        px += 30 + 6.2 * len(name)
    return out


def _path(s: Series, x: Axis, y: Axis, w: int, h: int) -> list[str]:
    runs: list[list[tuple[float, float]]] = [[]]
    for px, py in s.points:
        if finite(px) and finite(py) and not (y.log and py is not None and py <= 0):
            assert py is not None
            runs[-1].append(_xy(x, y, px, py, w, h))
        elif runs[-1]:
            runs.append([])
    d, dots = [], []
    for run in runs:
        if len(run) == 1:
            dots.append(run[0])
        elif run:
            d.append("M" + " L".join(f"{a:.1f} {b:.1f}" for a, b in run))
    out = []
    dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
    if d:
        out.append(
            f'<path d="{" ".join(d)}" fill="none" stroke="{s.color}" stroke-width="1.6"{dash}>'
            f"<title>{escape(s.name)}</title></path>"
        )
    out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2" fill="{s.color}"/>' for a, b in dots]
    return out


def _label_place(ty: float, placed: list[tuple[float, bool]]) -> tuple[float, bool]:
    """Where a reference line's label goes so that it overlaps none placed before: at the
    right end, else the left, else lower down on the right. Records the choice."""
    for dy in (0.0, 12.0, 24.0, -12.0):
        for right in (True, False):
            if all(abs(ty + dy - py) >= 11 or r != right for py, r in placed):
                placed.append((ty + dy, right))
                return ty + dy, right
    placed.append((ty, True))
    return ty, True


def line_chart(
    plot_id: str,
    title: str,
    x: Axis,
    y: Axis,
    series: Sequence[Series],
    hlines: Sequence[HLine] = (),
    bands: Sequence[Band] = (),
    markers: Sequence[Marker] = (),
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """A line chart: shaded bands, grid, reference lines, series, markers, legend."""
    w, h = width, height
    out = _open(plot_id, title, h, w)
    for b in bands:
        if finite(b.x0) and finite(b.x1):
            a, _ = _xy(x, y, b.x0, y.lo, w, h)
            c, _ = _xy(x, y, b.x1, y.lo, w, h)
            out.append(
                f'<rect x="{a:.1f}" y="{TOP}" width="{max(c - a, 1):.1f}" '
                f'height="{h - TOP - BOTTOM}" fill="{b.color}" fill-opacity="{b.opacity}">'
                f"<title>{escape(b.label)}</title></rect>"
            )
    out += _frame(x, y, w, h)
    placed: list[tuple[float, bool]] = []  # labels drawn so far: (y, on the right)
    for line in hlines:
        if not finite(line.y) or (y.log and line.y <= 0):
            continue
        _, py = _xy(x, y, x.lo, line.y, w, h)
        out.append(
            f'<line x1="{LEFT}" y1="{py:.1f}" x2="{w - RIGHT}" y2="{py:.1f}" stroke="{line.color}" '
            f'stroke-width="1.2" stroke-dasharray="{line.dash}"><title>{escape(line.label)}'
            f"</title></line>"
        )
        ty, right = _label_place(py - 3, placed)
        tx, anchor = (w - RIGHT - 4, "end") if right else (LEFT + 4, "start")
        out.append(
            f'<text x="{tx}" y="{ty:.1f}" text-anchor="{anchor}" fill="{line.color}">'
            f"{escape(line.label)}</text>"
        )
    for s in series:
        out += _path(s, x, y, w, h)
    for m in markers:
        if finite(m.x) and finite(m.y) and not (y.log and m.y <= 0):
            mx, my = _xy(x, y, m.x, m.y, w, h)
            out.append(
                f'<circle cx="{mx:.1f}" cy="{my:.1f}" r="4" fill="none" stroke="{m.color}" '
                f'stroke-width="1.5"><title>{escape(m.label)}</title></circle>'
            )
    out += _legend([(s.name, s.color, s.dash) for s in series], w)
    out.append("</svg>")
    return "\n".join(out)


def strip_chart(
    plot_id: str,
    title: str,
    x: Axis,
    rows: Sequence[tuple[str, Sequence[Span]]],
    legend: Sequence[tuple[str, str]] = (),
    width: int = WIDTH,
) -> str:
    """Rows of coloured spans over a shared x axis (fault windows, outages), with a legend of
    (name, colour)."""
    row_h = 24
    h = TOP + row_h * len(rows) + BOTTOM
    out = _open(plot_id, title, h, width)
    px = float(LEFT)
    for name, col in legend:
        out.append(f'<rect x="{px:.0f}" y="26" width="14" height="10" fill="{col}"/>')
        out.append(f'<text x="{px + 18:.0f}" y="35">{escape(name)}</text>')
        px += 30 + 6.2 * len(name)
    span_w = width - LEFT - RIGHT
    for i, (label, spans) in enumerate(rows):
        top = TOP + i * row_h
        out.append(
            f'<text x="{LEFT - 4}" y="{top + row_h / 2 + 4:.1f}" text-anchor="end">'
            f"{escape(label)}</text>"
        )
        out.append(
            f'<rect x="{LEFT}" y="{top + 3}" width="{span_w}" height="{row_h - 6}" class="frame"/>'
        )
        for s in spans:
            if not (finite(s.x0) and finite(s.x1)):
                continue
            a = LEFT + x.frac(s.x0) * span_w
            b = LEFT + x.frac(s.x1) * span_w
            out.append(
                f'<rect x="{a:.1f}" y="{top + 3}" width="{max(b - a, 1):.1f}" '
                f'height="{row_h - 6}" fill="{s.color}"><title>{escape(s.label)}</title></rect>'
            )
    bottom = TOP + row_h * len(rows)
    for v, text in x.ticks:
        if x.lo <= v <= x.hi:
            px = LEFT + x.frac(v) * span_w
            out.append(
                f'<line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" class="grid"/>'
            )
            out.append(
                f'<text x="{px:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(text)}</text>'
            )
    if x.label:
        out.append(
            f'<text x="{LEFT + span_w / 2:.1f}" y="{h - 6}" text-anchor="middle" '
            f'class="alabel">{escape(x.label)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def placeholder(plot_id: str, title: str, message: str, width: int = WIDTH) -> str:
    """An empty chart frame that says why there is nothing to draw."""
    h = 120
    out = _open(plot_id, title, h, width)
    out.append(
        f'<rect x="{LEFT}" y="{TOP}" width="{width - LEFT - RIGHT}" height="{h - TOP - 20}" '
        f'class="frame"/>'
    )
    out.append(
        f'<text x="{width / 2:.0f}" y="{TOP + (h - TOP - 20) / 2 + 4:.0f}" text-anchor="middle" '
        f'class="empty">{escape(message)}</text>'
    )
    out.append("</svg>")
    return "\n".join(out)


def color(i: int) -> str:
    """The *i*-th colour of the palette (cycling)."""
    return PALETTE[i % len(PALETTE)]
