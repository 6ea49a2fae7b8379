"""The fake MTA's filter stage: a seeded stand-in for rspamd and ClamAV, run on each message at
the end of DATA (:meth:`fakemta.inbound.InboundHandler.handle_DATA`).

It tells a message's class by content, as a real filter does — spam carries GTUBE, a virus the
EICAR file in a base64 attachment, anything else is ham — and then draws (seeded, per message:
:meth:`FilterStage.draw`) whether it catches it (``spam_detection``, ``virus_detection``) or
misjudges ham as spam (``false_positive``). What it does with what it caught
(:class:`bench.config.filters.FilterSpec`): spam is rejected at the end of DATA (rspamd's 554),
tagged (SpamAssassin's ``X-Spam-Flag: YES`` and ``X-Spam-Status: Yes``, and the subject tag),
filed in the mailbox's Junk folder (``junk``: a local copy goes untagged into Maildir++'s
``.Junk/``, as a Sieve ``fileinto "Junk"`` does; a relayed copy is tagged) or quarantined (250,
never delivered); a virus is rejected (554, clamav's text), stripped (its
attachment part taken out) or replaced (by a text part saying it was removed). The message
carries no label: the draw is the filter's own, not mailsla's.
"""

from __future__ import annotations

import base64
import hashlib
import random
import re
from dataclasses import dataclass

from bench.config.filters import EICAR, GTUBE, SPAM_REJECT, VIRUS_REJECT, FilterSpec

# Base64 of a part holding exactly the EICAR file (how mailsla's corpus and mail clients write it).
_EICAR_B64 = base64.b64encode(EICAR)
_BOUNDARY = re.compile(rb'boundary="?([^";\r\n]+)"?', re.IGNORECASE)
_KEYS = (  # what fixes a message's draw: its mailsla id, else its Message-ID
    re.compile(rb"^X-Mailsla-Id:[ \t]*([^\r\n]+)", re.IGNORECASE | re.MULTILINE),
    re.compile(rb"^Message-ID:[ \t]*([^\r\n]+)", re.IGNORECASE | re.MULTILINE),
)
_SUBJECT = re.compile(rb"^Subject:[ \t]?", re.IGNORECASE | re.MULTILINE)
SPAM_HEADERS = (
    b"X-Spam-Flag: YES\r\n"
    b"X-Spam-Status: Yes, score=1000.0 required=5.0 tests=GTUBE autolearn=no\r\n"
)
NOTE = (
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b'Content-Disposition: attachment; filename="removed.txt"\r\n\r\n'
    b"An attachment was removed: it carried Eicar-Test-Signature.\r\n"
)


@dataclass(slots=True)
class FilterStats:
    """What the filter stage saw and did."""

    scanned: int = 0
    spam_seen: int = 0
    virus_seen: int = 0
    spam_caught: int = 0
    virus_caught: int = 0
    false_positives: int = 0
    rejected: int = 0
    tagged: int = 0
    quarantined: int = 0
    junked: int = 0
    stripped: int = 0
    replaced: int = 0

    def as_dict(self) -> dict[str, int]:
        return {f"filter_{k}": getattr(self, k) for k in self.__slots__}


def _flat(content: bytes) -> bytes:
    return content.replace(b"\r\n", b"")


def is_virus(content: bytes) -> bool:
    return EICAR in content or _EICAR_B64 in _flat(content)


def is_spam(content: bytes) -> bool:
    return GTUBE in content


@dataclass(frozen=True, slots=True)
class Judgement:
    """What to do with a message: a *reply* to give instead of queueing it (reject), *drop*
    it silently after a 250 (quarantine), or queue *content* (maybe changed); *junk*: the
    untagged copy to file in local mailboxes' Junk folder (*content* is then the tagged copy,
    for recipients it relays)."""

    content: bytes
    reply: str | None = None
    drop: bool = False
    junk: bytes | None = None


class FilterStage:
    """Judge messages by *spec*, drawing from a sequence seeded by *seed*."""

    def __init__(self, spec: FilterSpec, seed: int) -> None:
        self.spec = spec
        self.seed = b"%d" % seed
        self.rng = random.Random(f"{seed}-filter")
        self.stats = FilterStats()

    def draw(self, content: bytes) -> float:
        """The message's uniform draw: fixed by the seed and its mailsla id (else its
        Message-ID), so a run with a seed is the same whatever order its messages come in and
        whenever it runs; from the seeded sequence when it has neither."""
        end = content.find(b"\r\n\r\n")
        end = end if end >= 0 else len(content)
        for key in _KEYS:
            m = key.search(content, 0, end)
            if m is not None:
                h = hashlib.blake2b(m.group(1).strip(), key=self.seed, digest_size=8).digest()
                return int.from_bytes(h, "big") / 2.0**64
        return self.rng.random()

    def judge(self, content: bytes) -> Judgement:
        spec, stats = self.spec, self.stats
        stats.scanned += 1
        u = self.draw(content)
        if is_virus(content):
            stats.virus_seen += 1
            if u >= spec.virus_detection:
                return Judgement(content)
            stats.virus_caught += 1
            return self._virus(content)
        if is_spam(content):
            stats.spam_seen += 1
            if u >= spec.spam_detection:
                return Judgement(content)
            stats.spam_caught += 1
            return self._spam(content)
        if u < spec.false_positive:
            stats.false_positives += 1
            return self._spam(content)
        return Judgement(content)

    def _spam(self, content: bytes) -> Judgement:
        action, stats = self.spec.spam_action, self.stats
        if action == "reject":
            stats.rejected += 1
            return Judgement(content, reply=SPAM_REJECT)
        if action == "quarantine":
            stats.quarantined += 1
            return Judgement(content, drop=True)
        tagged = tag(content, self.spec.subject_tag.encode("ascii"))
        if action == "junk":
            stats.junked += 1
            return Judgement(tagged, junk=content)
        stats.tagged += 1
        return Judgement(tagged)

    def _virus(self, content: bytes) -> Judgement:
        action, stats = self.spec.virus_action, self.stats
        if action == "reject":
            stats.rejected += 1
            return Judgement(content, reply=VIRUS_REJECT)
        changed = remove_virus(content, replace=action == "replace")
        if action == "replace":
            stats.replaced += 1
        else:
            stats.stripped += 1
        return Judgement(changed)


def tag(content: bytes, subject_tag: bytes) -> bytes:
    """*content* with SpamAssassin's verdict headers on top and *subject_tag* before the
    subject (a Subject header is added when there is none)."""
    end = content.find(b"\r\n\r\n")
    head = content[: end + 2] if end >= 0 else content
    rest = content[end + 2 :] if end >= 0 else b""
    m = _SUBJECT.search(head)
    if m is None:
        head = b"Subject: " + subject_tag + b"\r\n" + head
    else:
        head = head[: m.end()] + subject_tag + b" " + head[m.end() :]
    return SPAM_HEADERS + head + rest


def remove_virus(content: bytes, *, replace: bool) -> bytes:
    """*content* without the MIME parts holding EICAR (*replace*: each becomes :data:`NOTE`).
    A message that is not multipart loses its whole body."""
    end = content.find(b"\r\n\r\n")
    head = content[: end + 4] if end >= 0 else content + b"\r\n"
    m = _BOUNDARY.search(head)
    if m is None:
        return head + (NOTE.split(b"\r\n\r\n", 1)[1] if replace else b"")
    delim = b"--" + m.group(1)
    pieces = content.split(delim)
    out = [pieces[0]]
    for piece in pieces[1:]:
        if is_virus(piece):
            if replace:
                out.append(b"\r\n" + NOTE)
            continue
        out.append(piece)
    return delim.join(out)
