"""The fake MTA's filter stage: it tells classes by content, draws its verdicts from its own
seed, and acts as configured — checked on its own and through real SMTP into a post office."""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import AsyncIterator

import aiosmtplib
import pytest

from bench.config.filters import EICAR, GTUBE, SPAM_REJECT, VIRUS_REJECT, FilterSpec
from bench.core.corpus import Corpus
from bench.core.fates import ATTACHMENT, TAGGED
from bench.core.fates import EICAR as HAS_EICAR
from bench.core.message import MessageFactory
from bench.observe.fate_reader import marks_of
from bench.observe.postoffice import PostOffice
from fakemta.filter import FilterStage, is_spam, is_virus, remove_virus, tag
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import Arrivals

CORPUS = Corpus({"ham": 0.5, "spam": 0.25, "virus": 0.25}, 1, 4096)
HEAD = b"From: a@sender.test\r\nSubject: weekly figures\r\nMIME-Version: 1.0\r\n"


def _msg(cls: str, i: int = 0) -> bytes:
    return HEAD + CORPUS.bodies[cls][i]


def test_classes_by_content() -> None:
    for i in range(4):
        assert is_spam(_msg("spam", i)) and not is_virus(_msg("spam", i))
        assert is_virus(_msg("virus", i)) and not is_spam(_msg("virus", i))
        assert not is_spam(_msg("ham", i)) and not is_virus(_msg("ham", i))


def test_detection_and_false_positive_rates_are_drawn_as_set() -> None:
    spec = FilterSpec(spam_detection=0.9, virus_detection=0.6, false_positive=0.05)
    stage = FilterStage(spec, seed=7)
    n = 4000
    for cls in ("spam", "virus", "ham"):
        for i in range(n):
            stage.judge(_msg(cls, i % 4))
    s = stage.stats
    assert (s.spam_seen, s.virus_seen) == (n, n)
    assert abs(s.spam_caught / n - 0.9) < 0.02
    assert abs(s.virus_caught / n - 0.6) < 0.03
    assert abs(s.false_positives / n - 0.05) < 0.012
    assert s.rejected == s.spam_caught + s.virus_caught + s.false_positives

    # Seeded: the same seed draws the same verdicts, another seed others.
    def verdicts(seed: int) -> list[str | None]:
        stage = FilterStage(spec, seed)
        return [stage.judge(_msg("spam")).reply for _ in range(200)]

    assert verdicts(7) == verdicts(7)
    assert verdicts(7) != verdicts(8)


def test_the_draw_is_fixed_by_seed_and_mailsla_id() -> None:
    """Whatever the run (its Message-IDs name it) and the order, id and seed fix the draw."""
    stage = FilterStage(FilterSpec(), 3)

    def msg(run: str, seq: int) -> bytes:
        return b"Message-ID: <%d.%s@x>\r\nX-Mailsla-Id: %010d\r\n\r\nbody\r\n" % (
            seq,
            run.encode(),
            seq,
        )

    first = [stage.draw(msg("run-a", i)) for i in range(50)]
    again = [stage.draw(msg("run-b", i)) for i in reversed(range(50))][::-1]
    assert first == again
    assert first != [FilterStage(FilterSpec(), 4).draw(msg("run-a", i)) for i in range(50)]
    assert stage.draw(b"Message-ID: <a@b>\r\n\r\n") == stage.draw(b"Message-ID: <a@b>\r\n\r\nx")


def test_spam_actions() -> None:
    sure = {"spam_detection": 1.0}
    j = FilterStage(FilterSpec(**sure), 1).judge(_msg("spam"))  # type: ignore[arg-type]
    assert j.reply == SPAM_REJECT and not j.drop
    j = FilterStage(FilterSpec(spam_action="quarantine", **sure), 1).judge(_msg("spam"))  # type: ignore[arg-type]
    assert j.reply is None and j.drop
    j = FilterStage(FilterSpec(spam_action="tag", **sure), 1).judge(_msg("spam"))  # type: ignore[arg-type]
    msg = email.message_from_bytes(j.content, policy=email.policy.default)
    assert msg["X-Spam-Flag"] == "YES" and str(msg["X-Spam-Status"]).startswith("Yes")
    assert msg["Subject"] == "***SPAM*** weekly figures"
    assert marks_of(j.content) & TAGGED and GTUBE in j.content
    missed = FilterStage(FilterSpec(spam_detection=0.0), 1).judge(_msg("spam"))
    assert missed.reply is None and missed.content == _msg("spam")


def test_virus_actions() -> None:
    sure = FilterSpec(virus_detection=1.0)
    assert FilterStage(sure, 1).judge(_msg("virus")).reply == VIRUS_REJECT
    for action, want in (("strip", 0), ("replace", ATTACHMENT)):
        spec = FilterSpec(virus_detection=1.0, virus_action=action)
        out = FilterStage(spec, 1).judge(_msg("virus")).content
        msg = email.message_from_bytes(out, policy=email.policy.default)
        assert not msg.defects
        assert all(p.get_payload(decode=True) != EICAR for p in msg.walk() if not p.is_multipart())
        assert any(p.get_content_type() == "text/plain" for p in msg.walk())  # the note stays
        assert marks_of(out) == want
    assert marks_of(_msg("virus")) == HAS_EICAR | ATTACHMENT
    assert marks_of(_msg("ham", 0), junk=True) == TAGGED  # found in a Junk folder
    assert (
        remove_virus(b"Subject: x\r\n\r\n" + EICAR + b"\r\n", replace=False)
        == b"Subject: x\r\n\r\n"
    )
    assert tag(b"From: a\r\n\r\nbody", b"[SPAM]").startswith(b"X-Spam-Flag: YES\r\n")


@pytest.fixture
async def filtering(postoffice: tuple[PostOffice, Arrivals]) -> AsyncIterator[FakeMta]:
    po, _ = postoffice
    spec = FilterSpec(
        spam_detection=1.0,
        virus_detection=1.0,
        false_positive=0.0,
        spam_action="tag",
        virus_action="replace",
    )
    mta = FakeMta(FakeMtaConfig(relay_host="127.0.0.1", relay_port=po.port, filter=spec))
    await mta.start()
    yield mta
    await mta.stop()


async def test_through_smtp_the_post_office_reads_the_fates(
    filtering: FakeMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    po, arrivals = postoffice
    po.handler.read_marks = True
    f = MessageFactory(
        "t",
        size=4096,
        sender="a@sender.test",
        domain="remote.test",
        users=10,
        recipients=1,
        corpus=CORPUS,
    )
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=filtering.port,
        local_hostname="client.test",
        start_tls=False,
        timeout=10,
    )
    await client.connect()
    n = 40
    for seq in range(n):
        rcpts = f.recipients_of(seq)
        await client.sendmail(f.sender, rcpts, f.build(seq, rcpts, time.time_ns()))
    await client.quit()
    await arrivals.wait(n)
    for ident, _, _ in arrivals.items:
        assert ident is not None
        cls = CORPUS.class_of(ident.id)
        want = {"ham": 0, "spam": TAGGED, "virus": ATTACHMENT}[cls]
        if cls == "ham":
            want = ident.marks & ATTACHMENT  # ham may carry its PDF or CSV
        assert ident.marks == want, (ident.id, cls)
    stats = filtering.filter.stats if filtering.filter else None
    assert stats is not None and stats.scanned == n and stats.tagged + stats.replaced > 0


async def test_a_rejected_message_gets_the_filters_reply(
    postoffice: tuple[PostOffice, Arrivals],
) -> None:
    po, _ = postoffice
    mta = FakeMta(
        FakeMtaConfig(
            relay_host="127.0.0.1", relay_port=po.port, filter=FilterSpec(spam_detection=1.0)
        )
    )
    await mta.start()
    try:
        client = aiosmtplib.SMTP(
            hostname="127.0.0.1",
            port=mta.port,
            local_hostname="client.test",
            start_tls=False,
            timeout=10,
        )
        await client.connect()
        with pytest.raises(aiosmtplib.SMTPDataError) as info:
            await client.sendmail("a@sender.test", ["u@remote.test"], _msg("spam"))
        assert info.value.code == 554 and "Spam" in info.value.message
        await client.quit()
        assert mta.relay.stats.queued == 0
    finally:
        await mta.stop()
