"""Generated messages and their identity headers. Pure.

Each message carries ``X-Mailsla-Run``, ``X-Mailsla-Id`` (unique in the run),
``X-Mailsla-Tag`` (a MAC of run and id under the run's secret key: keyed BLAKE2b, 64 bits),
``X-Mailsla-Planned`` (wall-clock ns) and a ``Message-ID``. The body is built once per run;
a message costs one small header format and one MAC. :func:`parse_identity` reads the
identity back from the header block only, wherever an MTA has put its own headers, bounded
before anything is converted (an id of at most :data:`ID_DIGITS` digits, a run name of at most
:data:`RUN_MAX` characters); :meth:`Identity.genuine` tells mailsla's own mail from forged or
malformed copies, which are counted as foreign and never enter a histogram.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
from dataclasses import dataclass, field

from bench.config.scenario import Scenario
from bench.core.corpus import Corpus, real_size_pool

SIZE_POOL = 64  # message templates of real mail's sizes (message.sizes = "real", no mix)
FILLER = b"mailsla synthetic load: the quick brown fox jumps over the lazy dog 0123456789"


def _body(size: int) -> bytes:
    """*size* bytes of CRLF-terminated text lines, none starting with a dot."""
    if size <= 2:
        return b"\r\n"
    line = FILLER[:76] + b"\r\n"
    n, rest = divmod(size, len(line))
    body = line * n
    if rest >= 3:
        body += FILLER[: rest - 2] + b"\r\n"
    return body or b"\r\n"


ID_DIGITS = 10  # ids are written zero-padded to 10 digits; a longer one is not ours
RUN_MAX = 64  # scenario names are at most 64 characters, run ids a little more
TAG_BYTES = 8


def tag_of(key: bytes, run: str, seq: int) -> bytes:
    """The identity tag of message *seq* of *run*: 16 hex digits of a keyed BLAKE2b MAC."""
    mac = hashlib.blake2b(
        b"%s:%010d" % (run.encode("ascii", "replace"), seq), key=key, digest_size=TAG_BYTES
    )
    return mac.hexdigest().encode("ascii")


@dataclass(frozen=True, slots=True)
class Identity:
    """The identity a message carries: run, id, and the tag that proves they are genuine."""

    run: str
    id: int
    tag: bytes = field(default=b"", compare=False)  # the same message, whatever its proof
    marks: int = field(default=0, compare=False)  # what a filter did to it (core.fates)

    def genuine(self, key: bytes) -> bool:
        """Whether the tag is the run's MAC of run and id (compared in constant time)."""
        return hmac.compare_digest(self.tag, tag_of(key, self.run, self.id))


class MessageFactory:
    """Builds the envelope and bytes of message *seq* of run *run_id*."""

    def __init__(
        self,
        run_id: str,
        *,
        key: bytes = b"",
        size: int,
        sender: str,
        domain: str,
        users: int,
        recipients: int,
        corpus: Corpus | None = None,
        sizes: str = "fixed",
    ) -> None:
        self.run_id = run_id
        self.corpus = corpus
        self.key = key
        # The MAC of each id: the run's part hashed once, each message adds its id.
        self._mac = hashlib.blake2b(run_id.encode("ascii") + b":", key=key, digest_size=TAG_BYTES)
        self.sender = sender
        self.domain = domain
        self.users = users
        self.recipients = recipients
        # One bytes template per run, body and end of data included: a message costs one
        # %-format (see docs/performance.md for what the old str.format cost).
        esc = {
            k: v.encode("ascii").replace(b"%", b"%%")
            for k, v in (("run", run_id), ("sender", sender))
        }
        head = (
            b"From: mailsla <" + esc["sender"] + b">\r\n"
            b"To: %s\r\n"
            b"Subject: mailsla " + esc["run"] + b" #%010d\r\n"
            b"Date: %s\r\n"
            b"Message-ID: <%010d." + esc["run"] + b"@mailsla.test>\r\n"
            b"X-Mailsla-Run: " + esc["run"] + b"\r\n"
            b"X-Mailsla-Id: %010d\r\n"
            b"X-Mailsla-Tag: %s\r\n"
            b"X-Mailsla-Planned: %d\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"\r\n"
        )
        self._head = head
        self._date_s = -1
        self._date = b""
        self._domain_b = domain.encode("ascii")
        self._mail_cmd = b"MAIL FROM:<" + sender.encode("ascii") + b">\r\n"
        # Ids are zero-padded to 10 digits and planned times have 19: the header's length
        # varies only with the recipients' user numbers, so sizes are within a few bytes.
        widest = [f"user{users - 1}@{domain}"] * recipients
        sample = self._header(0, widest, 10**18)
        body = _body(max(size - len(sample), 0))
        self._body = body
        self._message = head + body.replace(b"%", b"%%") + b".\r\n"
        # RFC 1870: a message declares its size at MAIL FROM when the server offers SIZE; every
        # message of the run is at most the widest one, which each declares (an upper bound).
        self.max_size = len(sample) + len(body)
        # Labelled traffic: a template per body of the corpus (its MIME lines replace ours).
        self._labelled: dict[str, list[tuple[bytes, bytes]]] = {}
        self._bare = head
        if corpus is not None:
            mime = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            bare = head[: -len(mime)] + b"MIME-Version: 1.0\r\n"
            self._bare = bare
            for cls, pool in corpus.bodies.items():
                self._labelled[cls] = [(bare + e.replace(b"%", b"%%") + b".\r\n", e) for e in pool]
            widest_body = max(len(e) for pool in corpus.bodies.values() for e in pool)
            self.max_size = len(sample) - len(mime) + 21 + widest_body
        # Real mail's sizes without labelled traffic: a template per size of a stratified pool
        # (bench.core.corpus.real_size_pool), each cut at ``size``; message seq takes seq % n.
        self._sized: list[tuple[bytes, bytes]] = []
        if sizes == "real" and corpus is None:
            for target in real_size_pool(SIZE_POOL, size):
                b = _body(max(target - len(sample), 0))
                self._sized.append((head + b.replace(b"%", b"%%") + b".\r\n", b))
            self.max_size = len(sample) + max(len(b) for _, b in self._sized)
        self._mail_sized = self._mail_cmd[:-2] + b" SIZE=%d\r\n" % self.max_size

    @classmethod
    def for_scenario(
        cls, sc: Scenario, run_id: str, key: bytes, domain: str | None = None
    ) -> MessageFactory:
        """The factory for a scenario's [message] and [postoffice] settings (recipients in
        *domain* when given: a receive lane's, the mailbox domain). Every generator builds its
        factory here, so none forgets a [message] field (the single-process one once dropped
        ``sizes``: every message of a "real"-sized run went out at the cap)."""
        m = sc.message
        return cls(
            run_id,
            corpus=Corpus.of(sc),
            key=key,
            size=m.size,
            sender=m.sender,
            domain=sc.postoffice.domain if domain is None else domain,
            users=m.users,
            recipients=m.recipients,
            sizes=m.sizes,
        )

    def user_ids(self, seq: int) -> range | list[int]:
        """The user numbers of message *seq*'s recipients (``user<N>``)."""
        base = seq * self.recipients
        if base % self.users + self.recipients <= self.users:
            return range(base % self.users, base % self.users + self.recipients)
        return [(base + j) % self.users for j in range(self.recipients)]

    def recipients_of(self, seq: int) -> list[str]:
        """Recipients of message *seq*: users spread round-robin over ``users`` mailboxes."""
        base = seq * self.recipients
        return [f"user{(base + j) % self.users}@{self.domain}" for j in range(self.recipients)]

    def _date_of(self, planned_wall_ns: int) -> bytes:
        second = planned_wall_ns // 1_000_000_000
        if second != self._date_s:
            self._date_s = second
            self._date = email.utils.formatdate(second, localtime=False).encode("ascii")
        return self._date

    def tag(self, seq: int) -> bytes:
        """Message *seq*'s identity tag (equal to :func:`tag_of` with this run's key)."""
        mac = self._mac.copy()
        mac.update(b"%010d" % seq)
        return mac.hexdigest().encode("ascii")

    def _header(self, seq: int, rcpts: list[str], planned_wall_ns: int) -> bytes:
        to = b",\r\n ".join([b"<" + r.encode("ascii") + b">" for r in rcpts])  # one a line
        date = self._date_of(planned_wall_ns)
        return self._head % (to, seq, date, seq, seq, self.tag(seq), planned_wall_ns)

    def build(self, seq: int, rcpts: list[str], planned_wall_ns: int) -> bytes:
        """The message's bytes, CRLF line endings, ready for DATA (not yet dot-terminated)."""
        if self.corpus is not None:
            cls, i = self.corpus.body_of(seq)
            to = b",\r\n ".join([b"<" + r.encode("ascii") + b">" for r in rcpts])
            date = self._date_of(planned_wall_ns)
            fields = (to, seq, date, seq, seq, self.tag(seq), planned_wall_ns)
            return self._bare % fields + self._labelled[cls][i][1]
        body = self._sized[seq % len(self._sized)][1] if self._sized else self._body
        return self._header(seq, rcpts, planned_wall_ns) + body

    def envelope(self, seq: int, sized: bool = False) -> list[bytes]:
        """Message *seq*'s commands, ready to write: MAIL (with ``SIZE=`` when *sized*: the
        server offers SIZE), one RCPT per recipient, DATA."""
        base = seq * self.recipients
        users, dom = self.users, self._domain_b
        mail = self._mail_sized if sized else self._mail_cmd
        if self.recipients == 1:
            return [mail, b"RCPT TO:<user%d@%s>\r\n" % (base % users, dom), _DATA]
        rcpt = b"RCPT TO:<user%d@%s>\r\n"
        rcpts = [rcpt % ((base + j) % users, dom) for j in range(self.recipients)]
        return [mail, *rcpts, _DATA]

    def payload(self, seq: int, planned_wall_ns: int) -> bytes:
        """What follows DATA for message *seq*: the same bytes as :meth:`build`, with the end
        of data, made in one step (the generator's hot path)."""
        base = seq * self.recipients
        users, dom = self.users, self._domain_b
        if self.recipients == 1:
            to = b"<user%d@%s>" % (base % users, dom)
        else:
            to = b",\r\n ".join(
                [b"<user%d@%s>" % ((base + j) % users, dom) for j in range(self.recipients)]
            )
        date = self._date_of(planned_wall_ns)
        template = self._message
        if self.corpus is not None:
            cls, i = self.corpus.body_of(seq)
            template = self._labelled[cls][i][0]
        elif self._sized:
            template = self._sized[seq % len(self._sized)][0]
        return template % (to, seq, date, seq, seq, self.tag(seq), planned_wall_ns)


_DATA = b"DATA\r\n"
_ID = b"\nx-mailsla-id:"
_RUN = b"\nx-mailsla-run:"
_TAG = b"\nx-mailsla-tag:"


def _header_value(block: bytes, lowered: bytes, name: bytes) -> bytes | None:
    i = lowered.find(name)
    if i < 0:
        return None
    start = i + len(name)
    end = block.find(b"\n", start)
    return block[start : end if end >= 0 else len(block)].strip()


def parse_identity(content: bytes) -> Identity | None:
    """The (run, id) of a message from its header block, or None when it is not ours."""
    end = content.find(b"\r\n\r\n")
    if end < 0:
        end = content.find(b"\n\n")
    block = b"\n" + (content[:end] if end >= 0 else content)
    lowered = block.lower()
    raw_id = _header_value(block, lowered, _ID)
    raw_run = _header_value(block, lowered, _RUN)
    if raw_id is None or raw_run is None:
        return None
    # Bounded before any conversion: a received value never sizes anything.
    if not 0 < len(raw_id) <= ID_DIGITS or not raw_id.isdigit() or not raw_id.isascii():
        return None
    if not 0 < len(raw_run) <= RUN_MAX:
        return None
    tag = _header_value(block, lowered, _TAG) or b""
    return Identity(raw_run.decode("ascii", "replace"), int(raw_id), tag[: 2 * TAG_BYTES + 1])
