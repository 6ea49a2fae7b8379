"""The fake MTA as a post office of its own: local delivery into Maildirs, real sockets."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosmtplib
import pytest

from bench.config.delays import parse_delay
from bench.observe.postoffice import PostOffice
from fakemta.maildir import maildir_name
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import Arrivals, until

USERS = ("user0", "user1", "user2")
NAME = re.compile(r"^\d+\.M\d+P\d+Q\d+\.mta\.local\.test$")
BODY = (
    b"From: a@sender.test\r\nTo: user0@local.test\r\nSubject: hello\r\n\r\n"
    b"line one\r\n.a line that was dot-stuffed on the wire\r\n\r\nlast line\r\n"
)


def head(sender: str, rcpt: str) -> bytes:
    return f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode()


@pytest.fixture
def local_delay() -> str:
    return "const(0ms)"


@pytest.fixture
async def local_mta(
    postoffice: tuple[PostOffice, Arrivals], tmp_path: Path, local_delay: str
) -> AsyncIterator[FakeMta]:
    po, _ = postoffice
    mta = FakeMta(
        FakeMtaConfig(
            relay_host="127.0.0.1",
            relay_port=po.port,
            local_users=USERS,
            mailbox_root=str(tmp_path / "mail"),
            delivery_delay=parse_delay(local_delay),
            delivery_workers=2,
        )
    )
    await mta.start()
    yield mta
    await mta.stop()


async def _client(port: int) -> aiosmtplib.SMTP:
    c = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, local_hostname="client.test", start_tls=False, timeout=10
    )
    await c.connect()
    return c


def box(mta: FakeMta, user: str, sub: str = "new") -> Path:
    assert mta.config.mailbox_root is not None
    return Path(mta.config.mailbox_root) / user / sub


def delivered(mta: FakeMta) -> int:
    assert mta.local is not None
    return mta.local.stats.delivered


async def test_maildirs_are_made_for_known_users(local_mta: FakeMta) -> None:
    for user in USERS:
        for sub in ("tmp", "new", "cur"):
            assert box(local_mta, user, sub).is_dir()
            assert not any(box(local_mta, user, sub).iterdir())
    assert local_mta.inbound_port is not None and local_mta.inbound_port != local_mta.port


async def test_delivers_exact_bytes_with_mda_headers(local_mta: FakeMta) -> None:
    client = await _client(local_mta.port)
    await client.sendmail("a@sender.test", ["user0@local.test", "User1@Local.Test"], BODY)
    await client.quit()
    await until(lambda: delivered(local_mta) == 2)
    for user, rcpt in (("user0", "user0@local.test"), ("user1", "user1@local.test")):
        files = list(box(local_mta, user).iterdir())
        assert len(files) == 1
        assert NAME.match(files[0].name), files[0].name
        assert files[0].read_bytes() == head("a@sender.test", rcpt) + BODY
        assert not any(box(local_mta, user, "tmp").iterdir())
        assert not any(box(local_mta, user, "cur").iterdir())
    assert not any(box(local_mta, "user2").iterdir())


async def test_many_messages_get_unique_names_and_nothing_stays_in_tmp(
    local_mta: FakeMta,
) -> None:
    client = await _client(local_mta.port)
    n = 60
    for i in range(n):
        await client.sendmail("", ["user0@local.test"], b"Subject: %d\r\n\r\nbody\r\n" % i)
    await client.quit()
    await until(lambda: delivered(local_mta) == n)
    files = list(box(local_mta, "user0").iterdir())
    assert len(files) == n
    assert all(NAME.match(f.name) for f in files)
    contents = {f.read_bytes() for f in files}
    assert contents == {
        head("", "user0@local.test") + b"Subject: %d\r\n\r\nbody\r\n" % i for i in range(n)
    }
    assert not any(box(local_mta, "user0", "tmp").iterdir())
    assert local_mta.local is not None
    assert local_mta.local.stats.holding == 0
    assert local_mta.local.stats.failed == 0


def test_maildir_names_are_unique_and_escape_the_host() -> None:
    names = {maildir_name("mta.test") for _ in range(1000)}
    assert len(names) == 1000
    assert maildir_name("a/b:c").endswith(r".a/b:c")  # the caller escapes (Maildirs does)
    from fakemta.maildir import Maildirs

    assert Maildirs("/x", (), "a/b:c").host == r"a\057b\072c"
    with pytest.raises(ValueError):
        Maildirs("/x", ("../evil",), "h")


@pytest.mark.parametrize("local_delay", ["const(200ms)"])
async def test_delivery_delay_is_honoured(local_mta: FakeMta) -> None:
    client = await _client(local_mta.port)
    t0 = time.monotonic()
    await client.sendmail("a@sender.test", ["user2@local.test"], BODY)
    assert delivered(local_mta) == 0  # answered 250 before delivery
    await until(lambda: delivered(local_mta) == 1)
    elapsed = time.monotonic() - t0
    assert 0.2 <= elapsed < 2.0
    # 20 held messages are timers, not 20 busy threads in a row
    t0 = time.monotonic()
    for i in range(20):
        await client.sendmail("a@sender.test", ["user2@local.test"], b"n: %d\r\n\r\nx\r\n" % i)
    await until(lambda: delivered(local_mta) == 21)
    assert 0.2 <= time.monotonic() - t0 < 3.0
    await client.quit()


async def test_unknown_user_is_refused_at_rcpt(local_mta: FakeMta) -> None:
    client = await _client(local_mta.port)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await client.sendmail("a@sender.test", ["nobody@local.test"], BODY)
    refused = info.value.recipients[0]
    assert refused.code == 550
    assert refused.message == (
        "5.1.1 <nobody@local.test>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    )
    # one unknown among known ones: the known one still gets it
    errors, _ = await client.sendmail(
        "a@sender.test", ["ghost@local.test", "user0@local.test"], BODY
    )
    assert errors["ghost@local.test"][0] == 550
    await client.quit()
    await until(lambda: delivered(local_mta) == 1)
    stats = await local_mta.stop()
    assert stats["unknown_user"] == 2
    assert stats["delivered_local"] == 1
    assert stats["local_failed"] == 0


async def test_same_mailbox_twice_gets_one_copy(local_mta: FakeMta) -> None:
    client = await _client(local_mta.port)
    await client.sendmail("a@sender.test", ["user0@local.test", "USER0@local.test"], BODY)
    await client.quit()
    await until(lambda: delivered(local_mta) == 1)
    assert local_mta.local is not None and local_mta.local.stats.queued == 1
    assert len(list(box(local_mta, "user0").iterdir())) == 1


@pytest.mark.parametrize("postoffice_server", ["aiosmtpd"])  # sees the RCPT hook replaced below
async def test_mixed_recipients_relay_remote_and_deliver_local(
    local_mta: FakeMta, postoffice: tuple[PostOffice, Arrivals]
) -> None:
    po, arrivals = postoffice
    seen: list[str] = []
    original = po.handler.handle_RCPT

    def spy(server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        seen.append(address)
        return original(server, session, envelope, address, options)

    po.handler.handle_RCPT = spy  # type: ignore[method-assign]
    client = await _client(local_mta.port)
    rcpts = ["r1@remote.test", "user1@local.test", "r2@remote.test"]
    await client.sendmail("a@sender.test", rcpts, BODY)
    await client.quit()
    await arrivals.wait(1)
    await until(lambda: delivered(local_mta) == 1 and local_mta.relay.stats.relayed == 1)
    assert seen == ["r1@remote.test", "r2@remote.test"]
    assert local_mta.relay.stats.errors == {}
    [f] = list(box(local_mta, "user1").iterdir())
    assert f.read_bytes() == head("a@sender.test", "user1@local.test") + BODY


async def test_inbound_port_takes_local_mail_only(local_mta: FakeMta) -> None:
    assert local_mta.inbound_port is not None
    client = await _client(local_mta.inbound_port)
    await client.sendmail("b@elsewhere.test", ["user2@local.test"], BODY)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await client.sendmail("b@elsewhere.test", ["r@remote.test"], BODY)  # no open relay
    assert info.value.recipients[0].code == 550
    assert "Relay access denied" in info.value.recipients[0].message
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await client.sendmail("b@elsewhere.test", ["nobody@local.test"], BODY)
    assert "User unknown" in info.value.recipients[0].message
    await client.quit()
    await until(lambda: delivered(local_mta) == 1)
    [f] = list(box(local_mta, "user2").iterdir())
    assert f.read_bytes() == head("b@elsewhere.test", "user2@local.test") + BODY


async def test_failed_delivery_is_counted(local_mta: FakeMta) -> None:
    shutil.rmtree(box(local_mta, "user1").parent)  # the mailbox vanished under the MDA
    client = await _client(local_mta.port)
    await client.sendmail("a@sender.test", ["user1@local.test", "user0@local.test"], BODY)
    await client.quit()
    assert local_mta.local is not None
    stats = local_mta.local.stats
    await until(lambda: stats.delivered + stats.failed == 2)
    assert (stats.delivered, stats.failed, stats.holding) == (1, 1, 0)


async def test_local_domain_without_mailbox_root_is_relay_denied(fakemta: FakeMta) -> None:
    assert fakemta.inbound_port is None
    client = await _client(fakemta.port)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await client.sendmail("a@sender.test", ["user0@local.test"], BODY)
    assert info.value.recipients[0].message.startswith("5.7.1")
    await client.quit()
    stats = await fakemta.stop()
    assert "delivered_local" not in stats  # a pure relay reports what it always did


def test_local_domain_cannot_also_be_relayed(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="both relayed and local"):
        FakeMta(
            FakeMtaConfig(
                relay_host="127.0.0.1",
                relay_port=1,
                relay_domains=("local.test",),
                mailbox_root=os.fspath(tmp_path),
            )
        )
