"""The loopback DNS stub rspamd resolves through: every name NXDOMAIN, at once."""

from __future__ import annotations

import socket
import struct

from bench.harness.dns_stub import NxdomainServer, nxdomain_reply

QUESTION = b"\x07example\x03com\x00\x00\x01\x00\x01"  # example.com, A, IN


def query(qid: int = 0x1234, flags: int = 0x0100, qdcount: int = 1) -> bytes:
    return struct.pack("!HHHHHH", qid, flags, qdcount, 0, 0, 0) + QUESTION


def test_reply_is_nxdomain_echoing_id_and_question() -> None:
    reply = nxdomain_reply(query())
    assert reply is not None
    qid, flags, qd, an, ns, ar = struct.unpack("!HHHHHH", reply[:12])
    assert qid == 0x1234 and (qd, an, ns, ar) == (1, 0, 0, 0)
    assert flags & 0x8000 and flags & 0x0100 and flags & 0x0080  # QR, RD echoed, RA
    assert flags & 0x000F == 3  # NXDOMAIN
    assert reply[12:] == QUESTION


def test_malformed_packets_get_no_answer() -> None:
    assert nxdomain_reply(b"\x00" * 5) is None  # shorter than a header
    assert nxdomain_reply(query(flags=0x8100)) is None  # a response, not a query
    assert nxdomain_reply(query(qdcount=2)) is None
    assert nxdomain_reply(query()[:-3]) is None  # question cut short
    bad = struct.pack("!HHHHHH", 1, 0x0100, 1, 0, 0, 0) + b"\xc0\x0c\x00\x01\x00\x01"
    assert nxdomain_reply(bad) is None  # a compression pointer in a question


def test_server_answers_over_udp_on_loopback_and_stops() -> None:
    with NxdomainServer() as dns, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(query(qid=7), ("127.0.0.1", dns.port))
        reply = s.recv(512)
        assert reply[:2] == b"\x00\x07" and reply[3] & 0x0F == 3
        assert dns.queries == 1
        thread = dns._thread
    assert not thread.is_alive()
