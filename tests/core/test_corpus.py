"""Labelled traffic: the corpus's bodies are what real filters look for, and the class lives
only in the books."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
from collections import Counter
from email.message import EmailMessage

import pytest

from bench.config.filters import EICAR, GTUBE, GTUBE_ADD_HEADER
from bench.core.corpus import SCAN_LIMIT, ClassDraw, Corpus, real_size
from bench.core.message import MessageFactory

MIX = {"ham": 0.8, "spam": 0.1, "virus": 0.1}


def _factory(corpus: Corpus) -> MessageFactory:
    return MessageFactory(
        "run-1",
        key=b"k" * 16,
        size=4096,
        sender="load@sender.mailsla.test",
        domain="remote.test",
        users=10,
        recipients=1,
        corpus=corpus,
    )


def _messages(corpus: Corpus, n: int = 300) -> list[tuple[str, EmailMessage, bytes]]:
    f = _factory(corpus)
    out = []
    for seq in range(n):
        raw = f.build(seq, f.recipients_of(seq), 1_700_000_000 * 10**9)
        assert f.payload(seq, 1_700_000_000 * 10**9) == raw + b".\r\n"
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        out.append((corpus.class_of(seq), msg, raw))
    return out


def test_eicar_is_the_standard_file() -> None:
    assert len(EICAR) == 68
    assert hashlib.md5(EICAR).hexdigest() == "44d88612fea8a8f36de82e1278abb02f"


def test_virus_attachment_decodes_to_eicar_byte_exact() -> None:
    seen = 0
    for cls, msg, _ in _messages(Corpus(MIX, 3, 4096)):
        atts = [p for p in msg.walk() if p.get_content_disposition() == "attachment"]
        if cls != "virus":
            assert all(p.get_payload(decode=True) != EICAR for p in atts)
            continue
        seen += 1
        (att,) = atts
        assert att["Content-Transfer-Encoding"] == "base64"
        assert att.get_payload(decode=True) == EICAR  # no leading newline, nothing after
    assert seen > 10


def test_gtube_in_the_first_8_kib_of_a_text_part() -> None:
    seen = 0
    for cls, msg, raw in _messages(Corpus(MIX, 4, 64 * 1024)):
        texts = [p for p in msg.walk() if p.get_content_maintype() == "text"]
        if cls != "spam":
            assert GTUBE not in raw
            continue
        seen += 1
        first = texts[0].get_payload(decode=True)
        assert texts[0].get_content_type() == "text/plain"
        assert 0 <= first.find(GTUBE) < SCAN_LIMIT - len(GTUBE)
        # rspamd skips GTUBE in a text part over 8 KiB: the part stays small, the size holds
        assert len(first) <= SCAN_LIMIT, len(first)
        assert len(raw) > 0.8 * 64 * 1024, len(raw)
    assert seen > 10


def test_ham_is_valid_varied_mime() -> None:
    shapes: Counter[str] = Counter()
    for cls, msg, raw in _messages(Corpus(MIX, 5, 8192)):
        if cls != "ham":
            continue
        assert not msg.defects and all(not p.defects for p in msg.walk())
        assert GTUBE not in raw and EICAR not in raw
        assert max(len(line) for line in raw.split(b"\r\n")) < 1000
        assert not any(line.startswith(b".") for line in raw.split(b"\r\n"))
        kinds = sorted(p.get_content_type() for p in msg.walk() if not p.is_multipart())
        shapes[",".join(kinds)] += 1
        for p in msg.walk():
            if p.get_content_type() == "application/pdf":
                assert p.get_payload(decode=True).startswith(b"%PDF-1.4")
            if p.get_content_type() == "text/csv":
                assert p.get_payload(decode=True).startswith(b"date,item,")
    assert {"text/plain", "text/html,text/plain", "application/pdf,text/plain"} <= set(shapes)
    assert any("text/csv" in s for s in shapes)


def test_the_class_is_not_in_the_message() -> None:
    """Two messages of different classes differ in their bodies only: the headers mailsla
    adds (the tag is a MAC of run and id) say nothing of the class."""
    corpus = Corpus(MIX, 6, 4096)
    for cls, msg, _ in _messages(corpus, 100):
        for name in ("Subject", "X-Mailsla-Run", "X-Mailsla-Id", "X-Mailsla-Tag"):
            assert cls not in str(msg[name]).lower()


def test_the_draw_follows_the_shares_and_the_seed() -> None:
    draw = ClassDraw(MIX, 7)
    n = 20_000
    got = Counter(draw(i) for i in range(n))
    for cls, share in MIX.items():
        assert abs(got[cls] / n - share) < 0.015
    assert [draw(i) for i in range(50)] == [ClassDraw(MIX, 7)(i) for i in range(50)]
    assert [draw(i) for i in range(50)] != [ClassDraw(MIX, 8)(i) for i in range(50)]
    with pytest.raises(ValueError):
        ClassDraw({"ham": 0.0}, 1)


def test_real_sizes_follow_the_table() -> None:
    assert real_size(0.235) == 2048 and real_size(0.492) == 4096
    assert real_size(0.0) == 1024 and real_size(1.0) == 2 << 20
    corpus = Corpus({"ham": 1.0}, 1, 1 << 20, "real")
    sizes = sorted(len(b) for b in corpus.bodies["ham"])
    assert sizes[0] < 4096 and sizes[-1] > 16384  # varied, as real mail is


@pytest.mark.parametrize("size", [300, 2048, 20_000, 100_000])
def test_every_body_ends_its_lines(size: int) -> None:
    """A body that did not end with CRLF would swallow the end of DATA (the session hangs)."""
    corpus = Corpus(MIX, 9, size, "real")
    for pool in corpus.bodies.values():
        for body in pool:
            assert body.endswith(b"\r\n") and b"\r\n." not in body
            assert b"\n" not in body.replace(b"\r\n", b"")


def test_base64_of_eicar_in_the_message() -> None:
    """The attachment's text is the base64 of the 68 bytes (what clamd decodes)."""
    corpus = Corpus({"virus": 1.0}, 1, 2048)
    assert base64.b64encode(EICAR) in corpus.bodies["virus"][0].replace(b"\r\n", b"")


def test_spam_carries_the_gtube_string_the_scenario_names() -> None:
    """``message.gtube``: the standard string (rejected by rspamd whatever its actions), or
    rspamd's "add header" variant, the same but its first letter; never both."""
    standard = Corpus({"spam": 1.0}, 1, 4096).bodies["spam"]
    tagged = Corpus({"spam": 1.0}, 1, 4096, gtube="add_header").bodies["spam"]
    assert b"Y" + GTUBE[1:] == GTUBE_ADD_HEADER and GTUBE_ADD_HEADER != GTUBE
    assert all(GTUBE in b and GTUBE_ADD_HEADER not in b for b in standard)
    assert all(GTUBE_ADD_HEADER in b and GTUBE not in b for b in tagged)
    # the same bodies otherwise: only the pattern differs
    assert [b.replace(GTUBE, GTUBE_ADD_HEADER) for b in standard] == tagged
