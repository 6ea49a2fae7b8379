"""The scenario fuzzer: mutated scenario files (values replaced by other types and extremes,
keys added and removed, bytes flipped) either load or fail with a ScenarioError naming the file,
the field and why (exit 2): never another exception (a traceback), never a hang."""

from __future__ import annotations

import math
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.config.scenario import Scenario, ScenarioError, from_dict, load

SCENARIOS = sorted((Path(__file__).resolve().parents[2] / "scenarios").glob("*.toml"))
DOCS = {p.name: tomllib.loads(p.read_text()) for p in SCENARIOS}
FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

SCALARS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=40),
    st.sampled_from(
        [
            "0s",
            "1e400s",
            "-5s",
            "9" * 400 + "s",
            "uniform(5s, 1ms)",
            "exp(0)",
            "lognormal(1s, 99)",
            "1GiB",
            "0.0000001us",
            "127.0.0.1:99999",
            "[::1]:25",
            "auto",
            "both",
            "imap",
            "steps",
            "send_delay.p99 < 1us",
            "send_delay.p99[0s] < 1s",
            "x.p101 < 1s",
            "\0",
            "é" * 30,
        ]
    ),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


def paths(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in doc.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += paths(v, (*prefix, k))
    return out


def mutate(doc: dict[str, Any], path: tuple[str, ...], value: Any, drop: bool) -> dict[str, Any]:
    out = dict(doc)
    node = out
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
        node[part] = child = dict(child)
        node = child
    if drop:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = value
    return out


def loads_or_refuses(data: dict[str, Any]) -> None:
    try:
        sc = from_dict(data, "fuzz.toml")
    except ScenarioError as exc:
        lines = exc.lines()
        assert lines and all(line.startswith("fuzz.toml") for line in lines), lines
        return
    assert isinstance(sc, Scenario)
    load_ = sc.load
    assert math.isfinite(load_.rate) and load_.rate > 0
    assert math.isfinite(load_.duration) and math.isfinite(load_.drain)


@FUZZ
@given(st.sampled_from(sorted(DOCS)), st.data(), VALUES, st.booleans())
def test_mutated_values_load_or_are_refused(
    name: str, data: st.DataObject, value: Any, drop: bool
) -> None:
    doc = DOCS[name]
    known = paths(doc)
    path = data.draw(
        st.one_of(
            st.sampled_from(known),
            st.tuples(st.sampled_from([p[0] for p in known]), st.text(max_size=12)),
        )
    )
    loads_or_refuses(mutate(doc, path, value, drop))


@FUZZ
@given(st.sampled_from(SCENARIOS), st.data())
def test_flipped_bytes_load_or_are_refused(src: Path, data: st.DataObject) -> None:
    raw = bytearray(src.read_bytes())
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / src.name
        target.write_bytes(bytes(raw))
        try:
            sc = load(target)
        except ScenarioError as exc:
            assert exc.lines() and exc.lines()[0].startswith(str(target)), exc.lines()
        else:
            assert isinstance(sc, Scenario)
