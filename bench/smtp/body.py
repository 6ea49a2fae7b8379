"""A message body that arrives in several chunks, for both server paths, and the memory of big
messages given back once they are handled.

:class:`Body` keeps the chunks as they came (small ones gathered into blocks of
:data:`BLOCK` bytes, so a client trickling bytes costs no object per byte), finds the end marker
``CRLF.CRLF`` in each new chunk and across the seam with the last four bytes, and joins the
message once, at its end: one allocation of the message's size, then one more only if lines were
dot-stuffed. (Growing one ``bytearray`` and then slicing, unstuffing and copying it made four
copies of a message at its end.) Past the size limit it keeps nothing but the last four bytes,
and the answer waits for the end marker (RFC 5321 4.2.5).

Memory freed is not memory returned: glibc keeps freed blocks below its mmap threshold, which
it raises to the size of each big block freed (up to 32 MiB), so every concurrent 30 MB message
left about 60 MB behind it. :func:`release_soon` asks glibc to give free memory back
(``malloc_trim``) a moment after a message of :data:`BIG` bytes or more was handled, at most once
a second; elsewhere (no glibc) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import time
from collections.abc import Callable

MARKER = b"\r\n.\r\n"
BLOCK = 1 << 16  # chunks smaller than this are gathered into blocks of about this size
BIG = 1 << 20  # a message this big is followed by a malloc_trim


class Body:
    """The body of one message being received (after the 354), chunk by chunk."""

    __slots__ = ("held", "limit", "parts", "pend", "size", "tail", "too_big")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.pend = bytearray()  # small chunks, until they make a block
        self.size = 0  # bytes received so far (without the end marker, once it is found)
        self.held = 0  # bytes kept
        self.tail = b"\r\n"  # the last bytes received; at first, the line end before the body
        self.too_big = False

    def feed(self, chunk: bytes) -> int:
        """Take *chunk*; returns the offset in it just past the end marker, or -1 (not yet)."""
        tail = self.tail
        seam = (tail + chunk[:4]).find(MARKER)
        # where the marker starts in this chunk (negative: it began in what came before)
        end = seam - len(tail) if seam >= 0 else chunk.find(MARKER)
        if seam >= 0 or end >= 0:
            self._end(chunk, end)
            return end + 5
        self.size += len(chunk)
        if not self.too_big:
            if self.size - 2 > self.limit:  # too big, however it ends (the end's CRLF counts)
                self.too_big = True
                self.parts, self.pend, self.held = [], bytearray(), 0
            else:
                self._keep(chunk)
        self.tail = chunk[-4:] if len(chunk) >= 4 else (tail + chunk)[-4:]
        return -1

    def _keep(self, chunk: bytes) -> None:
        self.held += len(chunk)
        pend = self.pend
        if len(chunk) >= BLOCK and not pend:
            self.parts.append(chunk)
            return
        pend += chunk
        if len(pend) >= BLOCK:
            self.parts.append(bytes(pend))
            pend.clear()

    def _end(self, chunk: bytes, end: int) -> None:
        """The marker starts at *end* in *chunk* (before it when negative): the body ends with
        the marker's CRLF."""
        stop = end + 2
        self.size += stop
        if self.too_big or self.size > self.limit:
            self.too_big = True
            self.parts, self.pend, self.held = [], bytearray(), 0
        elif stop > 0:
            self._keep(chunk[:stop])
        elif stop < 0:  # the CRLF before the dot came with the last chunk
            self._drop(-stop)

    def _drop(self, n: int) -> None:
        """Forget the last *n* bytes kept (n <= 2)."""
        self.held -= n
        while n:
            if self.pend:
                k = min(n, len(self.pend))
                del self.pend[-k:]
            else:
                last = self.parts.pop()
                k = min(n, len(last))
                if len(last) > k:
                    self.parts.append(last[:-k])
            n -= k

    def content(self) -> bytes | None:
        """The message as received, dot-unstuffed (None: it was too big). Once, at the end."""
        if self.too_big:
            return None
        parts = self.parts
        if self.pend:
            parts.append(bytes(self.pend))
        raw = b"".join(parts)
        self.parts, self.pend, self.held = [], bytearray(), 0
        content = raw.replace(b"\r\n.", b"\r\n")  # the same object when nothing was stuffed
        return content[1:] if content[:1] == b"." else content


def _find_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_trim = _find_trim()
_scheduled: asyncio.AbstractEventLoop | None = None  # the loop a trim is due on
_last = 0.0


def release_soon(size: int) -> None:
    """A message of *size* bytes has just been handled: if it was big, give free memory back to
    the system soon (once its last references are gone), at most once a second."""
    global _scheduled
    if size < BIG or _trim is None:
        return
    loop = asyncio.get_running_loop()
    if _scheduled is loop:
        return
    _scheduled = loop
    loop.call_later(max(0.05, _last + 1.0 - time.monotonic()), _release)


def _release() -> None:
    global _scheduled, _last
    _scheduled = None
    _last = time.monotonic()
    if _trim is not None:
        _trim(0)
