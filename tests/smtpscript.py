"""A scripted SMTP server for tests: replies per stage as told, to provoke every outcome.

``Script(banner="554 no", rcpt="450 later", dot=STALL, mail=CLOSE)``: each stage answers with
the given reply, closes the connection (CLOSE) or never answers (STALL); unset stages say OK.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

CLOSE = "<close>"
STALL = "<stall>"


@dataclass
class Script:
    banner: str = "220 script.test ESMTP"
    ehlo: str = "250-script.test\r\n250 8BITMIME"
    mail: str = "250 2.1.0 Ok"
    rcpt: str = "250 2.1.5 Ok"
    data: str = "354 go ahead"
    dot: str = "250 2.0.0 Ok: queued"
    messages: list[bytes] = field(default_factory=list)
    # rule(stage, line or body) -> a reply overriding the stage's default, or None
    rule: Callable[[str, bytes], str | None] | None = None
    writes: int = 0  # how many reads the server made (pipelining packs commands into few)
    rsets: int = 0  # RSETs received

    def reply(self, stage: str, arg: bytes) -> str:
        if self.rule is not None:
            r = self.rule(stage, arg)
            if r is not None:
                return r
        return str(getattr(self, stage))


class ScriptedServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self.connections = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _reply(self, w: asyncio.StreamWriter, what: str) -> bool:
        if what == CLOSE:
            w.close()
            return False
        if what == STALL:
            await asyncio.sleep(3600)
            return False
        w.write(what.encode() + b"\r\n")
        await w.drain()
        return True

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        s = self.script
        in_txn, rcpts = False, 0
        try:
            if not await self._reply(w, s.banner):
                return
            while line := await r.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    ok = await self._reply(w, s.reply("ehlo", line))
                elif verb == b"MAIL":
                    reply = s.reply("mail", line)
                    in_txn, rcpts = reply.startswith("2"), 0
                    ok = await self._reply(w, reply)
                elif verb == b"RCPT":
                    reply = s.reply("rcpt", line) if in_txn else "503 5.5.1 need MAIL"
                    rcpts += reply.startswith("2")
                    ok = await self._reply(w, reply)
                elif verb == b"DATA":
                    if not in_txn or not rcpts:
                        reply = "554 5.5.1 no valid recipients" if in_txn else "503 need MAIL"
                    else:
                        reply = s.reply("data", line)
                    ok = await self._reply(w, reply)
                    if ok and reply.startswith("354"):
                        body = b""
                        while (chunk := await r.readline()) not in (b".\r\n", b""):
                            body += chunk
                        s.messages.append(body + b".\r\n")
                        in_txn = False
                        ok = await self._reply(w, s.reply("dot", body))
                elif verb == b"RSET":
                    in_txn = False
                    s.rsets += 1
                    ok = await self._reply(w, "250 2.0.0 reset")
                elif verb == b"QUIT":
                    await self._reply(w, "221 bye")
                    break
                else:
                    ok = await self._reply(w, "250 Ok")
                if not ok:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            w.close()
