"""The fake MTA's relay: what it sends is what it was given, on either client.

A message with one recipient goes out on mailsla's pipelined client, one with several on
aiosmtplib; the destination here is plain aiosmtpd, which records what it received.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import example, given
from hypothesis import strategies as st

from fakemta.relay import wire
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import until


@given(st.binary(max_size=200) | st.text("\r\n.ab", max_size=60).map(str.encode))
@example(b"")
@example(b".")
@example(b".\r\n.")
@example(b"a\rb\nc\r\n\r\n.d\n.\r")
def test_wire_is_what_aiosmtplib_sends(content: bytes) -> None:
    """Line endings made CRLF, a final CRLF, leading dots doubled: aiosmtplib's own rules."""
    assert wire(content) == PERIOD_REGEX.sub(b"..", normalize_message_line_endings(content))


class _Recorder:
    def __init__(self) -> None:
        self.got: list[tuple[str, list[str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        self.arrived.set()
        return "250 2.0.0 Ok"


@pytest.fixture
async def relayed() -> AsyncIterator[tuple[FakeMta, _Recorder]]:
    rec = _Recorder()
    loop = asyncio.get_running_loop()
    dest = await loop.create_server(lambda: SMTP(rec), "127.0.0.1", 0)
    mta = FakeMta(
        FakeMtaConfig(relay_host="127.0.0.1", relay_port=dest.sockets[0].getsockname()[1])
    )
    await mta.start()
    yield mta, rec
    await mta.stop()
    dest.close()
    await dest.wait_closed()


BODY = b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nplain\r\n.\r\nlast"


@pytest.mark.parametrize("rcpts", [["a@remote.test"], ["a@remote.test", "b@remote.test"]])
async def test_relayed_mail_is_what_was_submitted(
    relayed: tuple[FakeMta, _Recorder], rcpts: list[str]
) -> None:
    mta, rec = relayed
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False, timeout=10)
    await client.connect()
    await client.sendmail("s@sender.test", rcpts, BODY)
    await client.quit()
    await asyncio.wait_for(rec.arrived.wait(), 10)
    await until(lambda: mta.relay.stats.relayed == 1)
    assert rec.got == [("s@sender.test", rcpts, BODY + b"\r\n")]
    assert mta.relay.stats.errors == {}


async def test_a_refused_recipient_bounces_on_the_pipelined_path(
    relayed: tuple[FakeMta, _Recorder],
) -> None:
    mta, rec = relayed
    refuse: Any = rec  # aiosmtpd's RCPT hook, refusing everyone for good

    async def handle_RCPT(server: object, session: object, envelope: Any, addr: str, o: Any) -> str:
        return "550 5.1.1 no such user"

    refuse.handle_RCPT = handle_RCPT
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False, timeout=10)
    await client.connect()
    await client.sendmail("s@sender.test", ["a@remote.test"], BODY)
    await client.quit()
    await until(lambda: mta.relay.stats.bounced == 1)
    assert mta.relay.stats.errors == {"rcpt 550": 1} and rec.got == []
