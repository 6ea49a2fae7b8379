"""The filter-latency benchmark measures the paths it names (what each reply was), not speed."""

from __future__ import annotations

import os

import pytest

from bench.selftest.filter_latency import PATHS, measure
from tests.conftest import need_binary


@pytest.mark.realmta
@pytest.mark.slow
def test_each_path_gets_the_reply_it_is_named_for() -> None:
    for name in ("postfix", "rspamd", "clamd"):
        need_binary(name)
    if os.geteuid() != 0:
        pytest.skip("throwaway Postfix and rspamd need root")
    out = measure(n=3, rounds=1)
    assert set(out) == set(PATHS)
    assert out["clean"]["replies"] == out["attachment"]["replies"] == ["250 2.0.0 Ok:"]
    assert out["gtube"]["replies"] == ["554 5.7.1 Gtube pattern"]
    assert out["eicar"]["replies"] == [
        "554 5.7.1 clamav: virus found: Mailsla.Eicar-Test-File.Body.UNOFFICIAL"
    ]
    for row in out.values():
        assert row["messages"] == 3
        assert row["plain_p50_ms"] > 0 and row["filtered_p50_ms"] > 0
