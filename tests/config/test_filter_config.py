"""message.mix and [fakemta.filter]: validated, with errors naming the field."""

from __future__ import annotations

import pytest

from bench.config.advice import warnings
from bench.config.scenario import ScenarioError, from_dict


def test_defaults_and_spec() -> None:
    sc = from_dict({"name": "x", "message": {"mix": {"ham": 1}}, "fakemta": {"filter": {}}}, "s")
    assert sc.message.mix is not None and sc.message.mix.shares()["ham"] == 1.0
    assert sc.fakemta.filter is not None
    spec = sc.fakemta.filter.spec()
    assert (spec.spam_detection, spec.false_positive, spec.spam_action) == (0.98, 0.001, "reject")
    assert from_dict({"name": "x"}, "s").message.mix is None
    assert sc.mailbox.junk == "Junk"
    junk = {"name": "x", "mailbox": {"junk": ""}, "fakemta": {"filter": {"spam_action": "junk"}}}
    assert from_dict(junk, "s").mailbox.junk == ""  # "" watches no Junk folder


@pytest.mark.parametrize(
    ("data", "field", "why"),
    [
        ({"message": {"mix": {"ham": 0.5, "spam": 0.4}}}, "message.mix", "add up to 0.9"),
        ({"message": {"mix": {"ham": 1, "worm": 0.1}}}, "message.mix.worm", "unknown field"),
        ({"message": {"mix": {"ham": 1.5, "spam": -0.5}}}, "message.mix.ham", "<= 1"),
        ({"message": {"sizes": "huge"}}, "message.sizes", "fixed"),
        ({"message": {"gtube": "yjs"}}, "message.gtube", "add_header"),
        ({"fakemta": {"filter": {"spam_action": "drop"}}}, "fakemta.filter.spam_action", "tag"),
        ({"fakemta": {"filter": {"false_positive": 2}}}, "fakemta.filter.false_positive", "<= 1"),
        ({"fakemta": {"filter": {"subject_tag": ""}}}, "fakemta.filter.subject_tag", ""),
        ({"mailbox": {"junk": "../Junk"}}, "mailbox.junk", "pattern"),
        ({"mailbox": {"junk": "Junk*"}}, "mailbox.junk", "pattern"),
    ],
)
def test_bad_values_name_the_field(data: dict[str, object], field: str, why: str) -> None:
    with pytest.raises(ScenarioError) as info:
        from_dict({"name": "x", **data}, "s.toml")
    line = info.value.lines()[0]
    assert line.startswith(f"s.toml: {field}: ") and why in line


def test_advice_on_a_filter_nothing_measures() -> None:
    sc = from_dict({"name": "x", "fakemta": {"filter": {}}}, "s")
    assert any("no message.mix" in w for w in warnings(sc))
