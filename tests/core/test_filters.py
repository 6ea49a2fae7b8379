"""The filtering clauses' statistics: exact Clopper–Pearson bounds, the sample a claim needs
(the field notes' table), and the three verdicts."""

from __future__ import annotations

import math

import pytest

from bench.core.fates import ATTACHMENT, EICAR, TAGGED, FateBooks, fate_of
from bench.core.filters import Rate, interval, lower, needed, rates, summary, trec, upper


def test_clopper_pearson_known_values() -> None:
    # Zero events: the upper bound solves (1 - p)^n = alpha, exactly.
    assert upper(0, 1000) == pytest.approx(1 - 0.05 ** (1 / 1000), rel=1e-9)
    lo, hi = interval(0, 1000)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 1000), rel=1e-9)
    # All events: the mirror image.
    assert lower(100, 100) == pytest.approx(0.05 ** (1 / 100), rel=1e-9)
    # Published values (e.g. R's binom.test(5, 20)): 0.0866 - 0.4910.
    lo, hi = interval(5, 20)
    assert lo == pytest.approx(0.08657147, abs=1e-7) and hi == pytest.approx(0.4910459, abs=1e-7)
    # binom.test(50, 100): 0.3983 - 0.6017.
    lo, hi = interval(50, 100)
    assert lo == pytest.approx(0.3983211, abs=1e-6) and hi == pytest.approx(0.6016789, abs=1e-6)
    assert interval(0, 0) == (0.0, 1.0)


def test_one_sided_bound_is_a_binomial_tail() -> None:
    """The one-sided upper bound u of k in n is where P(X <= k | u) = 0.05."""
    k, n = 3, 400
    u = upper(k, n)
    tail = sum(math.comb(n, i) * u**i * (1 - u) ** (n - i) for i in range(k + 1))
    assert tail == pytest.approx(0.05, abs=1e-9)


@pytest.mark.parametrize(
    ("op", "promise", "row"),
    [
        ("<=", 0.0001, (29_956, 47_437, 62_956, 105_128)),  # false positives <= 0.01 %
        (">=", 0.97, (99, 157, 208, 348)),  # spam filtered >= 97 %
        (">=", 0.99, (299, 473, 628, 1_049)),  # virus detected >= 99 %
        ("<=", 0.001, (2_995, 4_742, 6_294, 10_511)),  # faulty minutes <= 0.1 %
    ],
)
def test_needed_matches_the_field_notes_table(
    op: str, promise: float, row: tuple[int, ...]
) -> None:
    assert tuple(needed(op, promise, k) for k in (0, 1, 2, 5)) == row


def test_verdicts_pass_fail_not_shown() -> None:
    # 1,000 ham, no false positive: <= 0.01 % is not shown, and needs about 30,000 ham.
    r = Rate("ham_misjudged", "ham", 0, 1000, "<=", 0.0001)
    assert r.verdict == "not_shown" and r.needed == 29_956
    assert Rate("ham_misjudged", "ham", 0, 29_956, "<=", 0.0001).verdict == "pass"
    assert Rate("ham_misjudged", "ham", 0, 29_955, "<=", 0.0001).verdict == "not_shown"
    # Ten false positives in 1,000: the promise is shown broken.
    assert Rate("ham_misjudged", "ham", 10, 1000, "<=", 0.0001).verdict == "fail"
    # Spam: 99 of 99 shows >= 97 %; 98 of 99 does not, and needs 157 with its one miss.
    assert Rate("spam_caught", "spam", 99, 99, ">=", 0.97).verdict == "pass"
    r = Rate("spam_caught", "spam", 98, 99, ">=", 0.97)
    assert r.verdict == "not_shown" and r.needed == 157
    assert Rate("spam_caught", "spam", 900, 1000, ">=", 0.97).verdict == "fail"
    # Nothing sent: never a pass.
    empty = Rate("virus_detected", "virus", 0, 0, ">=", 0.99)
    assert empty.verdict == "not_shown" and empty.rate is None and empty.needed == 299


def test_fates_and_rates_from_the_books() -> None:
    classes = {0: "ham", 1: "spam", 2: "virus"}
    books = FateBooks(lambda seq: classes[seq % 3])
    books.on_delivered(0, 0)  # ham, clean
    books.on_delivered(3, TAGGED)  # ham, tagged: misjudged
    books.on_rejected(6, "dot", 451)  # ham, deferred: no verdict
    books.on_rejected(1, "dot", 554)  # spam rejected
    books.on_delivered(4, TAGGED)  # spam tagged
    books.on_delivered(7, 0)  # spam missed
    books.on_undelivered(10, stopped=False)  # spam quarantined
    books.on_delivered(2, EICAR | ATTACHMENT | TAGGED)  # virus tagged, still there
    books.on_delivered(5, ATTACHMENT)  # virus replaced
    books.on_delivered(8, 0)  # virus stripped
    books.on_failed(11)  # virus: connection failed, no verdict
    by = books.by_class()
    assert by["ham"] == {"delivered_clean": 1, "delivered_tagged": 1, "deferred": 1}
    r = rates(by)
    assert (r["ham_misjudged"].hits, r["ham_misjudged"].n) == (1, 2)
    assert (r["spam_caught"].hits, r["spam_caught"].n) == (3, 4)
    assert (r["virus_detected"].hits, r["virus_detected"].n) == (3, 3)
    assert (r["virus_removed"].hits, r["virus_removed"].n) == (2, 3)
    doc = summary(books, {"ham": 0.4, "spam": 0.4, "virus": 0.2})
    assert doc["classes"]["virus"]["sent"] == 4
    assert doc["rejections"][0]["class"] in ("ham", "spam")
    assert set(doc["rates"]) == {"spam_caught", "ham_misjudged", "virus_detected", "virus_removed"}
    assert fate_of("virus", 0) == "attachment_removed"
    assert fate_of("ham", ATTACHMENT) == "delivered_clean"


def test_trec_figures() -> None:
    by = {
        "ham": {"delivered_clean": 999, "delivered_tagged": 1},
        "spam": {"rejected": 95, "delivered_clean": 5},
    }
    t = trec(by)
    assert t["hm_pct"] == pytest.approx(0.1) and t["sm_pct"] == pytest.approx(5.0)
    assert t["lam_pct"] is not None and 0.1 < t["lam_pct"] < 5.0
    assert trec({"ham": {"delivered_clean": 10}})["lam_pct"] is None


def test_delays_by_class_merge_and_show_what_scanning_adds() -> None:
    a = FateBooks(lambda seq: "ham" if seq % 2 else "spam")
    b = FateBooks(a.draw)
    for seq in range(10):
        a.on_delay(seq, "send_delay", 1_000_000 if seq % 2 else 3_000_000)
        b.on_delay(seq, "send_delay", 1_000_000 if seq % 2 else 3_000_000)
    a.merge(b)
    lat = a.latency()["send_delay"]
    assert lat["ham"]["count"] == 10 and lat["spam"]["count"] == 10
    assert lat["added_mean_s"]["spam"] == pytest.approx(0.002)
