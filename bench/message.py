"""Generated messages and their identity headers. Pure.

Each message carries ``X-Mailsla-Run``, ``X-Mailsla-Id`` (unique in the run),
``X-Mailsla-Planned`` (wall-clock ns) and a ``Message-ID``. The body is built once per run;
a message costs one small header format. :func:`parse_identity` reads the identity back from
the header block only, wherever an MTA has put its own headers.
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from bench.scenario import Scenario

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


@dataclass(frozen=True, slots=True)
class Identity:
    run: str
    id: int


class MessageFactory:
    """Builds the envelope and bytes of message *seq* of run *run_id*."""

    def __init__(
        self,
        run_id: str,
        *,
        size: int,
        sender: str,
        domain: str,
        users: int,
        recipients: int,
    ) -> None:
        self.run_id = run_id
        self.sender = sender
        self.domain = domain
        self.users = users
        self.recipients = recipients
        self._head = (
            "From: mailsla <{sender}>\r\n"
            "To: {to}\r\n"
            "Subject: mailsla {run} #{seq:010d}\r\n"
            "Date: {date}\r\n"
            "Message-ID: <{seq:010d}.{run}@mailsla.test>\r\n"
            "X-Mailsla-Run: {run}\r\n"
            "X-Mailsla-Id: {seq:010d}\r\n"
            "X-Mailsla-Planned: {planned}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n"
        )
        self._date_s = -1
        self._date = ""
        # Ids are zero-padded to 10 digits and planned times have 19: the header's length
        # varies only with the recipients' user numbers, so sizes are within a few bytes.
        widest = [f"user{users - 1}@{domain}"] * recipients
        sample = self._header(0, widest, 10**18)
        self._body = _body(max(size - len(sample), 0))

    @classmethod
    def for_scenario(cls, sc: Scenario, run_id: str) -> MessageFactory:
        """The factory for a scenario's [message] and [postoffice] settings."""
        m = sc.message
        return cls(
            run_id,
            size=m.size,
            sender=m.sender,
            domain=sc.postoffice.domain,
            users=m.users,
            recipients=m.recipients,
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

    def _header(self, seq: int, rcpts: list[str], planned_wall_ns: int) -> bytes:
        second = planned_wall_ns // 1_000_000_000
        if second != self._date_s:
            self._date_s = second
            self._date = email.utils.formatdate(second, localtime=False)
        return self._head.format(
            sender=self.sender,
            to=",\r\n ".join(f"<{r}>" for r in rcpts),  # folded: one address a line
            run=self.run_id,
            seq=seq,
            date=self._date,
            planned=planned_wall_ns,
        ).encode("ascii")

    def build(self, seq: int, rcpts: list[str], planned_wall_ns: int) -> bytes:
        """The message's bytes, CRLF line endings, ready for DATA (not yet dot-terminated)."""
        return self._header(seq, rcpts, planned_wall_ns) + self._body


_ID = b"\nx-mailsla-id:"
_RUN = b"\nx-mailsla-run:"


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
    if raw_id is None or raw_run is None or not raw_id.isdigit():
        return None
    return Identity(raw_run.decode("ascii", "replace"), int(raw_id))
