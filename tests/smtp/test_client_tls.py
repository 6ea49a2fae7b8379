"""STARTTLS, AUTH, connection reuse and stage timings of both generator clients, against a real
aiosmtpd server with certificates from a throwaway CA (trustme)."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from bench.config.names import STAGES
from bench.core.metrics import MetricSet
from bench.core.stages import StageTimes
from bench.load.generator import make_session
from bench.smtp.aioserver import PipeliningEhlo
from bench.smtp.options import SessionOptions
from bench.smtp.outcome import Session

CLIENTS = ("pipelined", "aiosmtplib")
USER, PASSWORD = "alice", "s3cret"
MSG = b"Subject: t\r\nX-Mailsla-Id: 1\r\n\r\nhello\r\n"


@dataclass
class Sink(PipeliningEhlo):
    received: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(envelope.original_content or b"")
        return "250 2.0.0 Ok"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)  # handled=True would send no reply


@dataclass
class Server:
    port: int
    sink: Sink
    ca_file: str


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def start_server(ca: trustme.CA, ca_file: str) -> AsyncIterator[Callable[..., Any]]:  # type: ignore[misc]
    servers: list[asyncio.AbstractServer] = []

    async def start(*, tls: bool = True, auth: bool = False, require_tls: bool = False) -> Server:
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        sink = Sink()
        loop = asyncio.get_running_loop()

        def factory() -> SMTP:
            return SMTP(
                sink,
                hostname="tls.test",
                tls_context=ctx if tls else None,
                require_starttls=require_tls,
                authenticator=_authenticator if auth else None,
                auth_required=auth,
                auth_require_tls=tls,
                loop=loop,
            )

        srv = await loop.create_server(factory, "127.0.0.1", 0)
        servers.append(srv)
        return Server(srv.sockets[0].getsockname()[1], sink, ca_file)

    yield start
    for srv in servers:
        srv.close()


async def _send(session: Session, n: int = 1) -> list[Any]:
    outs = [await session.send("a@x.test", ["b@remote.test"], MSG) for _ in range(n)]
    await session.quit()
    return outs


def _session(client: str, port: int, metrics: MetricSet | None = None, **kw: Any) -> Session:
    opts = SessionOptions(ehlo="c.test", timeout=5, **kw)
    stages = StageTimes(metrics) if metrics is not None else None
    return make_session(client, "127.0.0.1", port, opts, stages)


@pytest.mark.parametrize("client", CLIENTS)
async def test_starttls_verified_and_stage_times(client: str, start_server: Any) -> None:
    srv = await start_server(require_tls=True)
    metrics = MetricSet()
    s = _session(client, srv.port, metrics, tls="required", ca_file=srv.ca_file)
    outs = await _send(s, 3)
    assert [o.kind for o in outs] == ["accepted"] * 3
    assert len(srv.sink.received) == 3
    counts = {st: metrics["stage." + st].count for st in STAGES}
    assert counts["starttls"] == 1 and counts["auth"] == 0
    assert counts["mail"] == counts["rcpt"] == counts["data"] == counts["dot"] == 3
    assert counts["banner"] == 1
    assert all(metrics["stage." + st].min_ns >= 0 for st in STAGES if counts[st])


@pytest.mark.parametrize("client", CLIENTS)
async def test_certificate_that_fails_verification(client: str, start_server: Any) -> None:
    srv = await start_server()
    other = trustme.CA()
    with other.cert_pem.tempfile() as wrong_ca:
        s = _session(client, srv.port, tls="required", ca_file=wrong_ca)
        (out,) = await _send(s)
    assert (out.kind, out.stage) == ("failed", "starttls")
    assert out.error.startswith("certificate verify failed"), out.error
    assert srv.sink.received == []


@pytest.mark.parametrize("client", CLIENTS)
async def test_insecure_switch_skips_verification(client: str, start_server: Any) -> None:
    srv = await start_server()
    other = trustme.CA()
    with other.cert_pem.tempfile() as wrong_ca:
        s = _session(client, srv.port, tls="required", ca_file=wrong_ca, tls_verify=False)
        (out,) = await _send(s)
    assert out.kind == "accepted"


@pytest.mark.parametrize("client", CLIENTS)
async def test_tls_required_but_not_offered(client: str, start_server: Any) -> None:
    srv = await start_server(tls=False)
    (out,) = await _send(_session(client, srv.port, tls="required"))
    assert (out.kind, out.stage, out.error) == ("failed", "starttls", "starttls not offered")
    # Opportunistic goes on in the clear.
    (out,) = await _send(_session(client, srv.port, tls="opportunistic"))
    assert out.kind == "accepted"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("mechanism", ["plain", "login"])
async def test_auth_after_starttls(client: str, mechanism: str, start_server: Any) -> None:
    srv = await start_server(auth=True)
    metrics = MetricSet()
    s = _session(
        client,
        srv.port,
        metrics,
        tls="required",
        ca_file=srv.ca_file,
        auth_user=USER,
        auth_password=PASSWORD,
        auth_mechanism=mechanism,
    )
    outs = await _send(s, 2)
    assert [o.kind for o in outs] == ["accepted", "accepted"]
    assert metrics["stage.auth"].count == 1


@pytest.mark.parametrize("client", CLIENTS)
async def test_wrong_password_is_an_auth_rejection(client: str, start_server: Any) -> None:
    srv = await start_server(auth=True)
    s = _session(
        client,
        srv.port,
        tls="required",
        ca_file=srv.ca_file,
        auth_user=USER,
        auth_password="bad-Zq9x",
    )
    (out,) = await _send(s)
    assert (out.kind, out.stage, out.code) == ("rejected", "auth", 535), out
    assert "Zq9x" not in repr(s.opts)  # type: ignore[attr-defined]


@pytest.mark.parametrize("client", CLIENTS)
async def test_auth_required_without_credentials(client: str, start_server: Any) -> None:
    srv = await start_server(auth=True)
    (out,) = await _send(_session(client, srv.port, tls="required", ca_file=srv.ca_file))
    assert (out.kind, out.stage, out.code) == ("rejected", "mail", 530)


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("cap", "connects"), [(1, 7), (3, 3), (0, 1)])
async def test_messages_per_connection(
    client: str, cap: int, connects: int, start_server: Any
) -> None:
    srv = await start_server(tls=False)
    metrics = MetricSet()
    s = _session(client, srv.port, metrics, max_per_connection=cap)
    outs = await _send(s, 7)
    assert [o.kind for o in outs] == ["accepted"] * 7, outs
    assert s.connects == connects
    assert metrics["stage.connect"].count in (connects, 0)  # aiosmtplib times it as banner
    assert metrics["stage.banner"].count == connects


async def test_pipelined_cap_with_depth(start_server: Any) -> None:
    """Several callers on one session: a retired connection finishes what it took."""
    srv = await start_server(tls=False)
    s = _session("pipelined", srv.port, max_per_connection=2)
    outs = await asyncio.gather(*(s.send("a@x.test", ["b@remote.test"], MSG) for _ in range(9)))
    await s.quit()
    assert [o.kind for o in outs] == ["accepted"] * 9
    assert len(srv.sink.received) == 9
    assert s.connects >= 5
