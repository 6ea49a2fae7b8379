"""A tiny DNS server on loopback that answers every query NXDOMAIN, for filters run offline.

rspamd resolves names while it scans (and waits ~500 ms a query when no server answers); a
server that says at once "no such name" keeps it fast and keeps every lookup on this machine.
Only the header and the question are read (RFC 1035 §4.1): the reply echoes the question with
QR, RA and RCODE 3 set, and no records. Malformed packets are dropped.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

NXDOMAIN = 3


def nxdomain_reply(query: bytes) -> bytes | None:
    """The NXDOMAIN answer to *query*, or None when it is not a single-question DNS query."""
    if len(query) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", query[:6])
    if flags & 0x8000 or qdcount != 1:  # a response, or not one question
        return None
    i = 12
    while i < len(query):  # the question name: length-prefixed labels, ending in 0
        n = query[i]
        if n == 0:
            break
        if n & 0xC0:  # compression has no place in a question
            return None
        i += 1 + n
    end = i + 1 + 4  # the zero byte, QTYPE, QCLASS
    if i >= len(query) or end > len(query):
        return None
    opcode = flags & 0x7800
    reply_flags = 0x8000 | opcode | (flags & 0x0100) | 0x0080 | NXDOMAIN
    return struct.pack("!HHHHHH", qid, reply_flags, 1, 0, 0, 0) + query[12:end]


class NxdomainServer:
    """``with NxdomainServer() as dns: dns.address`` — UDP on 127.0.0.1, in a daemon thread."""

    def __init__(self, port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", port))
        self._sock.settimeout(0.2)
        self.port = int(self._sock.getsockname()[1])
        self.queries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="nxdomain-dns", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = nxdomain_reply(data)
            if reply is not None:
                self.queries += 1
                with contextlib.suppress(OSError):
                    self._sock.sendto(reply, peer)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)
        self._sock.close()

    def __enter__(self) -> NxdomainServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
