"""A worker that died mid-run: its share is booked from its last batch so the accounting
identity holds (sends under way failed, the unsent rest not sent)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bench.core.correlate import Correlator, Counts
from bench.core.lost_share import DIED, lost_share


def test_a_share_half_sent_is_booked_whole() -> None:
    last = Counts(planned=60, not_sent=0, sent=55, accepted=50, rejected=2, failed=1).as_dict()
    t = lost_share(last, share=100)
    c = Counts(**t.counts)
    assert c.planned == 100
    assert c.failed == 1 + 2  # 2 were under way when it died
    assert c.not_sent == 5 + 40  # planned but never started, and never planned
    assert c.accepted == 50 and c.sent == 55
    assert t.failed == {("data", DIED): 2} and t.metrics == ()


def test_no_batch_and_a_closed_model() -> None:
    assert Counts(**lost_share(None, 30).counts).not_sent == 30
    assert Counts(**lost_share(None, None).counts).planned == 0


@given(
    accepted=st.integers(0, 50),
    rejected=st.integers(0, 50),
    failed=st.integers(0, 50),
    under_way=st.integers(0, 50),
    waiting=st.integers(0, 50),
    not_sent=st.integers(0, 50),
    rest=st.integers(0, 50),
    delivered=st.integers(0, 50),
)
def test_the_identity_holds_after_the_books_close(
    accepted: int,
    rejected: int,
    failed: int,
    under_way: int,
    waiting: int,
    not_sent: int,
    rest: int,
    delivered: int,
) -> None:
    sent = accepted + rejected + failed + under_way
    planned = sent + waiting + not_sent
    last = Counts(
        planned=planned,
        not_sent=not_sent,
        sent=sent,
        accepted=accepted,
        rejected=rejected,
        failed=failed,
    ).as_dict()
    corr = Correlator("r", 10**9)
    corr.expect_remote()
    for seq in range(accepted):  # the ids its batches carried, some of them delivered
        corr.on_remote_accepted(seq, 0)
    for seq in range(min(delivered, accepted)):
        corr.on_arrival("r", seq, 1, 2)
    corr.absorb(lost_share(last, planned + rest))
    counts = corr.finish()
    assert counts.identity_holds
    assert counts.planned == planned + rest
    assert counts.undelivered == accepted - min(delivered, accepted)
