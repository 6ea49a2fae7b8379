"""What filtering adds to a message: the end-of-DATA reply time of a throwaway Postfix with
rspamd + ClamAV as its milter, against the same Postfix without one, per path.

The milter runs between the final "." and Postfix's reply, so the reply time is where its cost
shows (Postfix's smtpd then cleanup, the milter round trips, rspamd's scan, clamd's INSTREAM for
each attachment). Paths: ``clean`` (plain text: rspamd only), ``attachment`` (a CSV: rspamd and
clamd), ``gtube`` (rejected by rspamd), ``eicar`` (found by clamd, rejected). Rounds alternate
the two Postfixes; medians and p90 are over all messages. Up to 8 messages a session, RSET
between them, loopback only. Run: ``python -m bench.selftest.filter_latency [N] [ROUNDS]`` (root).
"""

from __future__ import annotations

import json
import socket
import statistics
import sys
import time
from email.message import EmailMessage
from typing import Any

from bench.harness.clamav import EICAR
from bench.harness.daemons import free_port
from bench.harness.filters import ThrowawayFilters
from bench.harness.postfix import ThrowawayPostfix

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
BODY = (
    "Dear Bob,\n\nplease find the figures for the third quarter below, as agreed on Monday.\n"
    "Revenue grew in the north and held steady in the south.\n\nKind regards,\nAlice\n"
)


def _message(path: str, i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice Example <alice@remote.test>"
    msg["To"] = "user0@local.test"
    msg["Subject"] = f"Quarterly figures {i}"
    msg["Date"] = "Thu, 03 Dec 2026 10:00:00 +0000"
    msg["Message-ID"] = f"<{path}.{i}.{time.time_ns()}@remote.test>"
    msg.set_content(BODY + (f"\n{GTUBE}\n" if path == "gtube" else ""))
    if path == "attachment":
        csv = b"region,quarter,revenue\nnorth,Q3,120400\nsouth,Q3,98150\n"
        msg.add_attachment(csv, maintype="text", subtype="csv", filename="q3.csv")
    if path == "eicar":
        msg.add_attachment(EICAR, maintype="application", subtype="zip", filename="tool.zip")
    raw = msg.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return raw.replace(b"\r\n.", b"\r\n..")


class _Session:
    """A bare SMTP session that times end of DATA to the reply."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms ACK waits
        self.buf = b""
        self._reply()
        self._cmd(b"EHLO client.test")

    def _reply(self) -> bytes:
        while True:
            lines = self.buf.split(b"\r\n")
            for n, line in enumerate(lines[:-1]):
                if line[3:4] == b" ":
                    self.buf = b"\r\n".join(lines[n + 1 :])
                    return line
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            self.buf += chunk

    def _cmd(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self._reply()

    def send(self, data: bytes) -> tuple[float, bytes]:
        self._cmd(b"MAIL FROM:<alice@remote.test>")
        self._cmd(b"RCPT TO:<user0@local.test>")
        if not self._cmd(b"DATA").startswith(b"354"):
            raise ConnectionError("DATA refused")
        self.sock.sendall(data + b"\r\n")
        t0 = time.perf_counter()
        self.sock.sendall(b".\r\n")
        reply = self._reply()
        took = time.perf_counter() - t0
        self._cmd(b"RSET")
        return took, reply

    def close(self) -> None:
        self._cmd(b"QUIT")
        self.sock.close()


PATHS = ("clean", "attachment", "gtube", "eicar")


# Postfix's smtpd counts each 5xx as an error and, past smtpd_soft_error_limit (10), sleeps
# before every reply: a session sends at most this many messages, so rejections stay unslowed.
PER_SESSION = 8


def _batch(port: int, path: str, n: int, times: list[float], replies: set[str]) -> None:
    for start in range(0, n, PER_SESSION):
        s = _Session(port)
        try:
            for i in range(start, min(n, start + PER_SESSION)):
                took, reply = s.send(_message(path, i))
                times.append(took)
                replies.add(reply.decode(errors="replace").split(" queued as ")[0][:72])
        finally:
            s.close()


def measure(n: int = 50, rounds: int = 3) -> dict[str, dict[str, Any]]:
    """Per path: median and p90 reply times (ms) with and without the filters, and replies."""
    raw: dict[str, dict[str, list[float]]] = {p: {"plain": [], "filtered": []} for p in PATHS}
    seen: dict[str, set[str]] = {p: set() for p in PATHS}
    with ThrowawayFilters() as filters:
        plain = ThrowawayPostfix(f"127.0.0.1:{free_port()}", users=2)
        filtered = ThrowawayPostfix(f"127.0.0.1:{free_port()}", users=2, milter=filters.milter)
        with plain, filtered:
            for path in PATHS:  # warm up: rspamd compiles its regexps after start
                _batch(filtered.port, path, 5, [], set())
            for _ in range(rounds):
                for path in PATHS:
                    _batch(plain.port, path, n, raw[path]["plain"], set())
                    _batch(filtered.port, path, n, raw[path]["filtered"], seen[path])
    out: dict[str, dict[str, Any]] = {}
    for path, sides in raw.items():
        row: dict[str, Any] = {"messages": len(sides["filtered"]), "replies": sorted(seen[path])}
        for side, xs in sides.items():
            q = statistics.quantiles(xs, n=10)
            row[f"{side}_p50_ms"] = round(statistics.median(xs) * 1000, 2)
            row[f"{side}_p90_ms"] = round(q[8] * 1000, 2)
        row["added_p50_ms"] = round(row["filtered_p50_ms"] - row["plain_p50_ms"], 2)
        out[path] = row
    return out


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    result = measure(n, rounds)
    print(f"{'path':<11} {'no milter p50/p90':>18} {'milter p50/p90':>16} {'added p50':>10}")
    for path, r in result.items():
        print(
            f"{path:<11} {r['plain_p50_ms']:>8} / {r['plain_p90_ms']:<7} "
            f"{r['filtered_p50_ms']:>7} / {r['filtered_p90_ms']:<7} {r['added_p50_ms']:>8} ms"
            f"   {'; '.join(r['replies'])}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
