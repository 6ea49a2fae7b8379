"""STARTTLS and AUTH on the fake MTA, with a real client: in-process on asyncio and on uvloop,
and end to end through the child process (which runs on uvloop)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import trustme
import uvloop

from bench.errors import StartupError
from bench.observe.postoffice import PostOffice
from bench.run.system_under_test import ChildFakeMta
from fakemta.server import FakeMta, FakeMtaConfig
from tests.conftest import Arrivals, until

MSG = b"Subject: tls\r\n\r\nover TLS\r\n"
USERS = (("alice", "s3cret"), ("bob", "pa:ss word"))

StartMta = Callable[..., Awaitable[FakeMta]]


@pytest.fixture
async def start_mta(postoffice: tuple[PostOffice, Arrivals]) -> AsyncIterator[StartMta]:
    po, _ = postoffice
    started: list[FakeMta] = []

    async def start(**options: Any) -> FakeMta:
        mta = FakeMta(FakeMtaConfig(relay_host="127.0.0.1", relay_port=po.port, **options))
        await mta.start()
        started.append(mta)
        return mta

    yield start
    for mta in started:
        await mta.stop()


def exists(path: str) -> bool:
    return Path(path).exists()


def trusting(cafile: str | None = None, ca: trustme.CA | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    if ca is not None:
        ca.configure_trust(ctx)
    ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # as Python 3.13+ does by default
    return ctx


async def _client(port: int, ctx: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> Any:
    c = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        local_hostname="client.test",
        start_tls=False,
        tls_context=ctx,
        timeout=10,
    )
    await c.connect()
    await c.ehlo()
    return c


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "mta.local.test"])
async def test_starttls_verifies_against_cert_file(
    start_mta: StartMta, postoffice: tuple[PostOffice, Arrivals], host: str
) -> None:
    _, arrivals = postoffice
    mta = await start_mta(tls=True)
    assert mta.cert_file is not None and exists(mta.cert_file)
    client = await _client(mta.port, trusting(mta.cert_file), host="127.0.0.1")
    assert client.supports_extension("starttls")
    await client.starttls(server_hostname=host)
    assert client.get_transport_info("sslcontext") is not None
    assert client.get_transport_info("peercert")["subject"] == (
        (("commonName", "mta.local.test"),),
    )
    await client.sendmail("a@sender.test", ["u@remote.test"], MSG)
    await client.quit()
    await arrivals.wait(1)


async def test_starttls_against_another_ca_fails(start_mta: StartMta) -> None:
    mta = await start_mta(tls=True)
    client = await _client(mta.port, trusting(ca=trustme.CA()))
    with pytest.raises(ssl.SSLCertVerificationError):
        await client.starttls()
    client.close()
    # the server is unharmed
    client = await _client(mta.port, trusting(mta.cert_file))
    await client.starttls()
    await client.quit()


async def test_given_certificate_is_used(start_mta: StartMta, tmp_path: Path) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "mta.local.test")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    mta = await start_mta(tls=True, tls_cert=str(cert), tls_key=str(key))
    assert mta.cert_file == str(cert)
    client = await _client(mta.port, trusting(ca=ca))
    await client.starttls()
    await client.quit()


async def test_self_signed_certificate_is_removed_at_stop(start_mta: StartMta) -> None:
    mta = await start_mta(tls=True)
    assert mta.cert_file is not None
    await mta.stop()
    assert not exists(mta.cert_file)


async def test_tls_required_refuses_mail_before_starttls(start_mta: StartMta) -> None:
    mta = await start_mta(tls=True, tls_required=True)
    client = await _client(mta.port, trusting(mta.cert_file))
    response = await client.execute_command(b"MAIL", b"FROM:<a@sender.test>")
    assert response.code == 530
    await client.starttls()
    await client.sendmail("a@sender.test", ["u@remote.test"], MSG)
    await client.quit()


@pytest.mark.parametrize("mechanism", ["plain", "login"])
async def test_auth_after_starttls(start_mta: StartMta, mechanism: str) -> None:
    mta = await start_mta(tls=True, auth_users=USERS, auth_required=True)
    client = await _client(mta.port, trusting(mta.cert_file))
    assert not client.supports_extension("auth")  # only after STARTTLS when TLS is on
    response = await client.execute_command(b"AUTH", b"PLAIN")
    assert response.code == 538
    await client.starttls()
    await client.ehlo()
    assert sorted(client.server_auth_methods) == ["login", "plain"]
    auth = client.auth_plain if mechanism == "plain" else client.auth_login
    response = await auth("bob", "pa:ss word")
    assert response.code == 235
    await client.sendmail("a@sender.test", ["u@remote.test"], MSG)
    await client.quit()


@pytest.mark.parametrize("mechanism", ["plain", "login"])
async def test_plaintext_auth_without_tls(start_mta: StartMta, mechanism: str) -> None:
    mta = await start_mta(auth_users=USERS)
    client = await _client(mta.port)
    assert not client.supports_extension("starttls")
    auth = client.auth_plain if mechanism == "plain" else client.auth_login
    assert (await auth("alice", "s3cret")).code == 235
    await client.quit()


async def test_wrong_password_gives_535(start_mta: StartMta) -> None:
    mta = await start_mta(auth_users=USERS)
    client = await _client(mta.port)
    for auth in (client.auth_plain, client.auth_login):
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as info:
            await auth("alice", "wrong")
        assert info.value.code == 535
        assert info.value.message.startswith("5.7.8")
    with pytest.raises(aiosmtplib.SMTPAuthenticationError):
        await client.auth_plain("mallory", "s3cret")
    await client.quit()
    stats = await mta.stop()
    assert stats["auth_failed"] == 3


async def test_auth_required_refuses_mail_before_auth(start_mta: StartMta) -> None:
    mta = await start_mta(auth_users=USERS, auth_required=True)
    client = await _client(mta.port)
    response = await client.execute_command(b"MAIL", b"FROM:<a@sender.test>")
    assert response.code == 530
    await client.auth_plain("alice", "s3cret")
    await client.sendmail("a@sender.test", ["u@remote.test"], MSG)
    await client.quit()


async def test_no_auth_offered_without_users(start_mta: StartMta) -> None:
    mta = await start_mta(tls=True)
    client = await _client(mta.port, trusting(mta.cert_file))
    await client.starttls()
    await client.ehlo()
    assert not client.supports_extension("auth")
    assert client.supports_extension("pipelining")
    await client.quit()


def test_starttls_and_local_delivery_on_uvloop_in_process(tmp_path: Path) -> None:
    """aiosmtpd's STARTTLS drives asyncio.sslproto by hand: check it on uvloop's transports
    (server and client on one uvloop loop)."""

    async def scenario() -> dict[str, object]:
        assert isinstance(asyncio.get_running_loop(), uvloop.Loop)
        mta = FakeMta(
            FakeMtaConfig(
                relay_host="127.0.0.1",
                relay_port=9,  # nothing is relayed
                mailbox_root=str(tmp_path),
                local_users=("user0",),
                tls=True,
                tls_required=True,
                auth_users=USERS,
                auth_required=True,
            )
        )
        await mta.start()
        assert mta.cert_file is not None
        try:
            for _ in range(3):
                client = await _client(mta.port, trusting(mta.cert_file))
                await client.starttls()
                await client.ehlo()
                await client.auth_login("alice", "s3cret")
                await client.sendmail("a@sender.test", ["user0@local.test"], MSG * 200)
                await client.quit()
            assert mta.local is not None
            await until(lambda: mta.local is not None and mta.local.stats.delivered == 3)
        finally:
            stats = await mta.stop()
        return stats

    assert uvloop.run(scenario())["delivered_local"] == 3
    assert len(list((tmp_path / "user0" / "new").iterdir())) == 3


async def test_child_process_end_to_end(
    postoffice: tuple[PostOffice, Arrivals], tmp_path: Path
) -> None:
    """The child runs on uvloop: STARTTLS, AUTH, relay, local delivery and the inbound port."""
    po, arrivals = postoffice
    child = ChildFakeMta(
        FakeMtaConfig(
            relay_host="127.0.0.1",
            relay_port=po.port,
            mailbox_root=str(tmp_path),
            local_users=("user0", "user1"),
            tls=True,
            auth_users=USERS,
            auth_required=True,
        )
    )
    port = await child.start()
    try:
        assert port == child.port
        assert child.inbound_port is not None and child.inbound_port != port
        assert child.cert_file is not None and exists(child.cert_file)
        client = await _client(port, trusting(child.cert_file))
        await client.starttls()
        await client.ehlo()
        await client.auth_plain("alice", "s3cret")
        await client.sendmail("a@sender.test", ["u@remote.test", "user0@local.test"], MSG)
        await client.quit()
        # another post office hands mail in on the inbound port, over opportunistic TLS
        client = await _client(child.inbound_port, trusting(child.cert_file))
        await client.starttls()
        await client.sendmail("b@elsewhere.test", ["user1@local.test"], MSG)
        await client.quit()
        await arrivals.wait(1)

        def arrived() -> bool:
            return all(any((tmp_path / u / "new").iterdir()) for u in ("user0", "user1"))

        await until(arrived)
    finally:
        stats = await child.stop()
    assert stats["relayed"] == 1
    assert stats["delivered_local"] == 2
    assert stats["local_failed"] == 0
    assert not exists(child.cert_file)  # the child removed its throwaway certificate


async def test_child_reports_a_bad_certificate(tmp_path: Path) -> None:
    child = ChildFakeMta(
        FakeMtaConfig(relay_host="127.0.0.1", relay_port=9, tls=True, tls_cert=str(tmp_path / "no"))
    )
    with pytest.raises(StartupError, match="TLS certificate"):
        await child.start()
