"""Field types of scenario files: durations, sizes, delay distributions, addresses, hostnames
and thresholds, each parsed from the file's strings with an error that quotes the input. Pure."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer

from bench.config.delays import Delay, parse_delay
from bench.config.thresholds import Threshold, parse_threshold
from bench.config.units import format_duration, format_size, parse_duration, parse_size


def _duration(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, str):
        raise ValueError(f'{v!r} is not a duration (write it as a string with a unit: "20s")')
    return parse_duration(v)


def _delay(v: Any) -> Delay:
    if isinstance(v, Delay):
        return v
    if not isinstance(v, str):
        raise ValueError(f'{v!r} is not a delay distribution (write e.g. "const(10ms)")')
    return parse_delay(v)


def parse_address(v: Any) -> tuple[str, int]:
    if isinstance(v, tuple):
        return v
    if not isinstance(v, str):
        raise ValueError(f'{v!r} is not an address (write "host:port")')
    host, sep, port = v.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f'{v!r} is not an address (write "host:port", e.g. "127.0.0.1:2525")')
    return host, int(port)


def _size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, str | int):
        raise ValueError(f'{v!r} is not a size (e.g. "2KiB")')
    return parse_size(v)


def _fmt_addr(a: tuple[str, int]) -> str:
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


Duration = Annotated[float, BeforeValidator(_duration), PlainSerializer(format_duration)]
DelayDist = Annotated[Delay, BeforeValidator(_delay), PlainSerializer(str)]
Address = Annotated[tuple[str, int], BeforeValidator(parse_address), PlainSerializer(_fmt_addr)]
Size = Annotated[int, BeforeValidator(_size), PlainSerializer(format_size)]
ThresholdT = Annotated[
    Threshold,
    BeforeValidator(lambda v: v if isinstance(v, Threshold) else parse_threshold(v)),
    PlainSerializer(lambda t: t.text),
]
Hostname = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")]
