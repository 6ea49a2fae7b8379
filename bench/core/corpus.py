"""Labelled traffic: realistic ham, GTUBE spam and EICAR virus mail, and the class of each
message id. Pure.

The class of message *seq* is a seeded draw (:meth:`Corpus.class_of`) that only mailsla's books
know: the message carries no label (its ``X-Mailsla-Tag`` is a MAC of run and id alone). What a
filter can see is what a real one sees: the GTUBE string in the first 8 KiB of a text part (the
part of a text part rspamd scans), or the standard 68-byte EICAR file as a base64 attachment
(decoded, byte-exact, no leading newline). Ham is business mail: plain or HTML text, sometimes
with a small PDF or CSV attached, sized as ``message.size`` or from real mail's sizes
(:data:`REAL_SIZES`), truncated at it.

Each body is a MIME entity (its ``MIME-Version`` and ``Content-Type`` header lines, a blank line,
the content) with CRLF line ends, lines under 1000 bytes and none starting with a dot, so it can
follow the message's header block as is. A run builds a pool of bodies once
(:data:`POOL`); a message picks one of its class's by another seeded draw.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import random
from collections.abc import Mapping

from bench.config.filters import EICAR, GTUBE, GTUBE_PATTERNS
from bench.config.scenario import Scenario

EICAR_MD5 = "44d88612fea8a8f36de82e1278abb02f"
CLASSES = ("ham", "spam", "virus")
POOL = {"ham": 32, "spam": 4, "virus": 4}  # bodies built per class
SCAN_LIMIT = 8192  # rspamd checks GTUBE in the first 8 KiB of a text part
SPAM_PART = SCAN_LIMIT - 1024  # a spam text part stays under this: rspamd skips larger ones

# Cumulative share of real mail under each size (field notes, "Workload shape").
REAL_SIZES = (
    (1024, 0.0),
    (2048, 0.235),
    (4096, 0.492),
    (8192, 0.676),
    (16384, 0.796),
    (32768, 0.854),
    (65536, 0.905),
    (131072, 0.933),
    (262144, 0.957),
    (524288, 0.972),
    (1 << 20, 0.985),
    (2 << 20, 1.0),
)

_WORDS = [
    "quarterly",
    "report",
    "meeting",
    "agenda",
    "invoice",
    "attached",
    "schedule",
    "project",
    "review",
    "budget",
    "team",
    "customer",
    "order",
    "delivery",
    "contract",
    "proposal",
    "update",
    "timeline",
    "milestone",
    "colleagues",
    "office",
    "please",
    "find",
    "regards",
    "thanks",
    "confirm",
    "tomorrow",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "minutes",
    "summary",
    "draft",
    "figures",
    "forecast",
    "approval",
    "department",
    "support",
    "request",
    "ticket",
    "shipment",
    "warehouse",
    "account",
    "payment",
    "received",
    "pending",
    "discuss",
    "call",
    "conference",
    "room",
    "training",
    "onboarding",
    "policy",
    "documentation",
    "release",
    "version",
    "feedback",
    "notes",
    "action",
    "items",
]

_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 612 792]/Contents 4 0 R"
    b"/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    b"4 0 obj<</Length 44>>stream\nBT /F1 18 Tf 72 720 Td (Minutes) Tj ET\nendstream endobj\n"
    b"5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def _u(seed: int, seq: int, salt: bytes) -> float:
    """A uniform draw in [0, 1) fixed by (seed, seq, salt)."""
    h = hashlib.blake2b(b"%d:%d:" % (seed, seq) + salt, digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def real_size(u: float) -> int:
    """The size of real mail at cumulative share *u* (log-linear between the table's points)."""
    for (s0, c0), (s1, c1) in itertools.pairwise(REAL_SIZES):
        if u <= c1:
            f = (u - c0) / (c1 - c0) if c1 > c0 else 0.0
            return int(s0 * (s1 / s0) ** f)
    return REAL_SIZES[-1][0]


def mean_real_size(cap: int | None = None) -> float:
    """The mean size of real mail (bytes), each message cut at *cap* when given: exact for the
    log-linear table, a segment from s0 to s1 = s0·r averaging s0·(r − 1)/ln r."""
    total = 0.0
    for (s0, c0), (s1, c1) in itertools.pairwise(REAL_SIZES):
        r = s1 / s0
        if cap is None or cap >= s1:
            total += (c1 - c0) * s0 * (r - 1) / math.log(r)
        elif cap <= s0:
            total += (c1 - c0) * cap
        else:  # the segment's sizes rise past the cap at f = log_r(cap / s0)
            f = math.log(cap / s0) / math.log(r)
            total += (c1 - c0) * (s0 * (r**f - 1) / math.log(r) + (1 - f) * cap)
    return total


def real_size_pool(n: int, cap: int) -> list[int]:
    """*n* sizes of real mail, one from each of *n* equal slices of the distribution (at its
    middle), each cut at *cap*, in a fixed shuffled order: message *seq* takes ``seq % n``."""
    sizes = [min(real_size((i + 0.5) / n), cap) for i in range(n)]
    random.Random("real-size-pool").shuffle(sizes)
    return sizes


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(6, 14))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _text(rng: random.Random, size: int) -> bytes:
    """About *size* bytes of plain business prose, lines of at most 76 characters."""
    lines = ["Hello,", ""]
    total = 8
    while total < size:
        para = " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))
        line = ""
        for word in para.split():
            if len(line) + len(word) + 1 > 76:
                lines.append(line)
                total += len(line) + 2
                line = word
            else:
                line = f"{line} {word}" if line else word
        lines += [line, ""]
        total += len(line) + 4
    lines += ["Best regards,", "The operations team"]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _html(text: bytes) -> bytes:
    paras = text.decode("ascii").split("\r\n\r\n")
    body = "".join(f"<p>{p.replace(chr(13) + chr(10), ' ')}</p>\r\n" for p in paras if p)
    return (
        '<!DOCTYPE html>\r\n<html><head><meta charset="us-ascii"><title>Update</title>'
        "</head>\r\n<body>\r\n" + body + "</body></html>\r\n"
    ).encode("ascii")


def _b64(data: bytes) -> bytes:
    raw = base64.b64encode(data)
    return b"".join(raw[i : i + 76] + b"\r\n" for i in range(0, len(raw), 76))


def _csv(rng: random.Random) -> bytes:
    rows = ["date,item,quantity,amount"]
    for i in range(rng.randint(5, 40)):
        rows.append(
            f"2026-11-{1 + i % 28:02d},item-{rng.randint(100, 999)},{rng.randint(1, 50)},"
            f"{rng.randint(100, 99999) / 100:.2f}"
        )
    return ("\r\n".join(rows) + "\r\n").encode("ascii")


def _part(ctype: bytes, content: bytes, *, name: bytes = b"", b64: bool = False) -> bytes:
    head = b"Content-Type: " + ctype
    if name:
        head += b'; name="' + name + b'"\r\nContent-Disposition: attachment; filename="'
        head += name + b'"'
    head += b"\r\nContent-Transfer-Encoding: " + (b"base64" if b64 else b"7bit") + b"\r\n\r\n"
    return head + (_b64(content) if b64 else content)


def _multipart(kind: bytes, boundary: bytes, parts: list[bytes]) -> bytes:
    out = b"Content-Type: multipart/" + kind + b'; boundary="' + boundary + b'"\r\n\r\n'
    out += b"This is a multi-part message in MIME format.\r\n"
    for p in parts:
        out += b"--" + boundary + b"\r\n" + p
    return out + b"--" + boundary + b"--\r\n"


_TEXT = b"text/plain; charset=us-ascii"
_HTML = b"text/html; charset=us-ascii"


def ham(rng: random.Random, size: int, shape: int) -> bytes:
    """A ham entity of about *size* bytes; *shape* 0 plain, 1 plain + HTML, 2 with a PDF,
    3 HTML alternative with a CSV attached."""
    boundary = b"=_mailsla_%08x" % rng.getrandbits(32)
    if shape == 0:
        return (
            b"Content-Type: "
            + _TEXT
            + b"\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
            + _text(rng, size)
        )
    if shape == 1:
        text = _text(rng, size // 3)
        alt = [_part(_TEXT, text), _part(_HTML, _html(text))]
        return _multipart(b"alternative", boundary, alt)
    if shape == 2:
        text = _text(rng, max(size - 1200, 200))
        pdf = _part(b"application/pdf", _PDF, name=b"minutes.pdf", b64=True)
        return _multipart(b"mixed", boundary, [_part(_TEXT, text), pdf])
    csv = _csv(rng)
    text = _text(rng, max((size - 2 * len(csv)) // 3, 200))
    inner = _multipart(
        b"alternative", boundary + b"_alt", [_part(_TEXT, text), _part(_HTML, _html(text))]
    )
    att = _part(b"text/csv; charset=us-ascii", csv, name=b"orders.csv", b64=True)
    return _multipart(b"mixed", boundary, [inner, att])


def spam(rng: random.Random, size: int, shape: int, gtube: bytes = GTUBE) -> bytes:
    """A spam entity: GTUBE on the first lines of its (first) text part.

    rspamd skips the GTUBE check in a text part over 8 KiB (measured on rspamd 3.4), so the
    text part is kept under :data:`SPAM_PART`; a larger *size* is made up by a base64 price
    list attached beside it, so the message keeps its size and stays recognisable."""
    text = b"Special offer, act now.\r\n" + gtube + b"\r\n\r\n"
    prose = _text(rng, max(min(size, SPAM_PART) - len(text) - 200, 100))
    if len(text) + len(prose) > SPAM_PART:  # cut at a line's end: every entity ends with CRLF
        prose = prose[: prose.rindex(b"\r\n", 0, SPAM_PART - len(text)) + 2]
    text += prose
    boundary = b"=_mailsla_%08x" % rng.getrandbits(32)
    if shape % 2 == 0:
        body = _part(_TEXT, text)
    else:
        body = _multipart(b"alternative", boundary, [_part(_TEXT, text), _part(_HTML, _html(text))])
    rest = size - len(body) - 300
    if rest <= 0:
        return body
    rows = b""
    while len(rows) * 4 // 3 < rest:
        rows += _csv(rng)
    att = _part(b"text/csv", rows, name=b"offer-prices.csv", b64=True)
    return _multipart(b"mixed", b"=_mailsla_%08x" % rng.getrandbits(32), [body, att])


def virus(rng: random.Random, size: int, shape: int) -> bytes:
    """A virus entity: a short note and the EICAR file as a base64 attachment."""
    boundary = b"=_mailsla_%08x" % rng.getrandbits(32)
    text = _text(rng, max(min(size - 600, 4096), 150))
    name = (b"eicar.com", b"invoice.com", b"update.exe", b"scan.com")[shape % 4]
    att = _part(b"application/octet-stream", EICAR, name=name, b64=True)
    return _multipart(b"mixed", boundary, [_part(_TEXT, text), att])


_MAKERS = {"ham": ham, "spam": spam, "virus": virus}


class ClassDraw:
    """The class of each message id: a seeded draw by the *shares* of the mix (class ->
    share, adding up to 1). What the books use; the message never says it."""

    def __init__(self, shares: Mapping[str, float], seed: int) -> None:
        self.shares = {c: float(shares.get(c, 0.0)) for c in CLASSES}
        self.seed = seed
        self._cuts: list[tuple[float, str]] = []
        acc = 0.0
        for c in CLASSES:
            if self.shares[c] > 0:
                acc += self.shares[c]
                self._cuts.append((acc, c))
        if not self._cuts:
            raise ValueError("a mix needs a class with a share above 0")

    def __call__(self, seq: int) -> str:
        """The class of message *seq*."""
        u = _u(self.seed, seq, b"class")
        for cut, c in self._cuts:
            if u < cut:
                return c
        return self._cuts[-1][1]

    @classmethod
    def of(cls, sc: Scenario) -> ClassDraw | None:
        """The scenario's draw (None: it sends no labelled traffic)."""
        mix = sc.message.mix
        return None if mix is None else cls(mix.shares(), sc.seed)


class Corpus:
    """The class of each message id and a pool of bodies per class, fixed by *seed*.

    *shares*: the mix (class -> share, adding up to 1); *size*: the target size of a body
    (``sizes="fixed"``) or the cap of real mail's sizes (``sizes="real"``, ham only); *gtube*:
    which GTUBE string spam carries (``message.gtube``: "standard" or "add_header").
    """

    def __init__(
        self,
        shares: Mapping[str, float],
        seed: int,
        size: int,
        sizes: str = "fixed",
        gtube: str = "standard",
    ) -> None:
        self.draw = ClassDraw(shares, seed)
        self.seed = seed
        self.bodies: dict[str, list[bytes]] = {}
        rng = random.Random(f"corpus-{seed}")
        for c in CLASSES:
            if self.draw.shares[c] <= 0:
                continue
            pool = []
            for i in range(POOL[c]):
                target = size
                if sizes == "real" and c == "ham":
                    target = min(real_size(rng.random()), size)
                if c == "spam":
                    body = spam(rng, max(target, 256), i % 4, GTUBE_PATTERNS[gtube])
                else:
                    body = _MAKERS[c](rng, max(target, 256), i % 4)
                if not body.endswith(b"\r\n") or b"\r\n." in body:
                    raise AssertionError(f"corpus: a {c} body would end the DATA early or never")
                pool.append(body)
            self.bodies[c] = pool

    @classmethod
    def of(cls, sc: Scenario) -> Corpus | None:
        """The scenario's corpus (None: no ``message.mix``)."""
        m = sc.message
        if m.mix is None:
            return None
        return cls(m.mix.shares(), sc.seed, m.size, m.sizes, m.gtube)

    def class_of(self, seq: int) -> str:
        """The class of message *seq* (a draw only the books know)."""
        return self.draw(seq)

    def body_of(self, seq: int) -> tuple[str, int]:
        """(class, index in its pool) of message *seq*'s body."""
        c = self.draw(seq)
        return c, int(_u(self.seed, seq, b"body") * len(self.bodies[c]))
