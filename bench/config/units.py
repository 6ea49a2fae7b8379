"""Sizes and durations as users write them ("2KiB", "250ms"); pure parsing and formatting."""

from __future__ import annotations

import re

from bench.config.delays import parse_duration

__all__ = ["format_duration", "format_size", "parse_duration", "parse_size"]

_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|K|M)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "k": 1024,
    "K": 1024,
    "M": 1024**2,
}


def parse_size(text: str | int) -> int:
    """Parse ``"2KiB"``, ``"100KB"``, ``"512"`` (bytes) into a byte count."""
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"{text!r} is not a size (must be >= 0)")
        return text
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size (use e.g. 512B, 2KiB, 1MiB)")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])


def format_size(n: int) -> str:
    for unit, f in (("MiB", 1024**2), ("KiB", 1024)):
        if n >= f and n % f == 0:
            return f"{n // f}{unit}"
    return f"{n}B"


def _plain(x: float) -> str:
    """*x* without an exponent, in as few digits as represent it exactly."""
    text = repr(x)
    if "e" in text or "E" in text:
        text = f"{x:.20f}".rstrip("0").rstrip(".")
    return text[:-2] if text.endswith(".0") else text


def format_duration(seconds: float) -> str:
    """The shortest text that :func:`parse_duration` reads back as exactly *seconds*:
    0.25 -> "250ms", 20 -> "20s", 300 -> "5m", 2.3 -> "2.3s"."""
    if seconds == 0:
        return "0s"
    candidates = []
    for unit, f in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        v = seconds / f
        texts = [_plain(v) + unit]
        if v >= 1 and abs(v - round(v)) < 1e-9 * v:
            texts.append(f"{round(v)}{unit}")
        for text in texts:
            try:
                if parse_duration(text) == seconds:
                    candidates.append(text)
            except ValueError:
                continue
    if candidates:
        return min(candidates, key=lambda t: (len(t), "." in t))  # shortest, whole on a tie
    return _plain(seconds) + "s"
