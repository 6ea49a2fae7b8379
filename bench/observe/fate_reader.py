"""Reading a filter's verdict from mail that arrived: the marks of :mod:`bench.core.fates`.

A copy is *tagged* when its header block carries a spam or virus verdict in the conventions of
SpamAssassin (``X-Spam-Flag: YES``, ``X-Spam-Status: Yes, score=…``), rspamd (``X-Spam: Yes``,
``X-Rspamd-Action`` other than ``no action``, ``X-Spamd-Result: … True``), a virus scanner
(``X-Virus-Status: Infected``, ``X-Virus: …``) or a subject tag (``***SPAM***``, ``[SPAM]``,
``*** SPAM ***``), or when it was found in a Junk folder (the watcher says so). It still has
the EICAR file when the string is there raw or in base64 (any of its three alignments); it has
an attachment when a part says ``Content-Disposition: attachment``. Bounded: the header block
is read up to :data:`HEADER_LIMIT` bytes.
"""

from __future__ import annotations

import base64
import re

from bench.config.filters import EICAR
from bench.core.fates import ATTACHMENT, TAGGED
from bench.core.fates import EICAR as HAS_EICAR

HEADER_LIMIT = 256 * 1024

_VERDICT = re.compile(
    rb"^(?:x-spam-flag:[ \t]*yes"
    rb"|x-spam-status:[ \t]*yes"
    rb"|x-spam:[ \t]*(?:yes|true)"
    rb"|x-rspamd-action:[ \t]*(?!no action)\S"
    rb"|x-spamd-result:[^\r\n]*\btrue\b"
    rb"|x-virus-status:[ \t]*infected"
    rb"|x-virus:[ \t]*\S"
    rb"|x-virus-found:[ \t]*yes)",
    re.IGNORECASE | re.MULTILINE,
)
_SUBJECT_TAG = re.compile(
    rb"^subject:[^\r\n]*(?:\*\*\*[ \t]*spam[ \t]*\*\*\*|\[spam\])", re.IGNORECASE | re.MULTILINE
)
_ATTACHMENT = re.compile(rb"^content-disposition:[ \t]*attachment", re.IGNORECASE | re.MULTILINE)


def _b64_forms(data: bytes) -> tuple[bytes, ...]:
    """Substrings that any base64 encoding of a text containing *data* contains (one for each
    of the three alignments, the edges cut), for a search without decoding."""
    forms = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + data)
        start = 4 if shift else 0  # the quantum holding the padding bytes is not data's
        forms.append(enc[start:-4])
    return tuple(forms)


_EICAR_FORMS = (EICAR, *_b64_forms(EICAR))


def _unfolded(block: bytes) -> bytes:
    return re.sub(rb"\r?\n[ \t]+", b" ", block)


def marks_of(content: bytes, *, junk: bool = False) -> int:
    """The marks of a delivered copy (*junk*: it was found in a Junk folder)."""
    end = content.find(b"\r\n\r\n", 0, HEADER_LIMIT)
    if end < 0:
        end = content.find(b"\n\n", 0, HEADER_LIMIT)
    head = _unfolded(content[: end if end >= 0 else HEADER_LIMIT])
    marks = TAGGED if junk or _VERDICT.search(head) or _SUBJECT_TAG.search(head) else 0
    # Base64 lines are split every 76 characters: search with the line ends taken out.
    flat = content.replace(b"\r\n", b"").replace(b"\n", b"")
    if any(form in flat for form in _EICAR_FORMS):
        marks |= HAS_EICAR
    if _ATTACHMENT.search(content):
        marks |= ATTACHMENT
    return marks
