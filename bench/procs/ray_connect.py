"""Joining a Ray cluster as its driver (``mailsla run --ray ADDRESS``): Ray imported only
when a run asks for it (:func:`require_ray`, which says how to get it when it is missing),
and an address checked before ``ray.init`` is let at it, which would otherwise retry for
minutes where nothing answers, wait without end where something that is not Ray does, and
retry for half a minute at a head that wants an auth token this host does not send.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from bench.errors import UsageError
from bench.procs.ray_clocks import Node

CONNECT_TIMEOUT_S = 5.0
INIT_TIMEOUT_S = 10.0  # how long a head that takes TCP has to answer as Ray's GCS does
AUTH_MODE_ENV = "RAY_AUTH_MODE"  # "token": Ray sends its auth token (see _answers_as_ray)
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": every node on 127.0.0.1
INSTALL_HINT = "install it with: pip install 'mailsla[ray]' (or, in a checkout: make ray)"


def require_ray() -> Any:
    """The ray module; a :class:`UsageError` saying how to get it when it is missing."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> list[Node]:
    """Join the Ray cluster at *address* ("auto": the one running on this host) as its
    driver; its live nodes. Raises :class:`UsageError` when Ray is missing or no cluster
    answers there."""
    ray = require_ray()
    if not ray.is_initialized():
        _reachable(address)
        _answers_as_ray(address)
        try:
            ray.init(
                address=address,
                logging_level="WARNING",
                log_to_driver=False,
                configure_logging=False,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(
                f"--ray {address}: no Ray cluster answers there: {exc}",
                "start one with `ray start --head` (README: Many hosts)",
            ) from None
    return [
        Node(n["NodeID"], n["NodeManagerAddress"], int(n["Resources"].get("CPU", 0)))
        for n in ray.nodes()
        if n.get("Alive")
    ]


def _reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail fast when *address* (host:port) takes no TCP connection: Ray itself would retry
    for minutes. "auto" and ray:// addresses are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout).close()
    except OSError as exc:
        raise UsageError(
            f"--ray {address}: nothing answers there ({exc.strerror or exc})",
            "start the head with `ray start --head --port PORT` (README: Many hosts)",
        ) from None


def _answers_as_ray(address: str, timeout: float = INIT_TIMEOUT_S) -> None:
    """Fail within *timeout* when *address* takes TCP but is no Ray head, or is one that
    wants a token this host lacks: ``ray.init`` would wait for its GCS without end, or retry
    for half a minute. One GCS call (GetClusterId) with a deadline: a reply is Ray. A
    refusal for want of a token (a head started by ``ray start`` with token auth, the
    default when ~/.ray/auth_token exists) is asked again with this host's token (Ray's own
    loader: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); when the head takes it,
    token auth is turned on for ``ray.init``, which with an explicit address does not do so
    itself. Left to Ray: "auto", ray:// addresses, and TLS (RAY_USE_TLS)."""
    _host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address or _env_on("RAY_USE_TLS"):
        return
    if _gcs_answers(address, (), timeout):
        return
    from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined,unused-ignore]

    header = AuthenticationTokenLoader.instance().get_token_for_http_header(ignore_auth_mode=True)
    metadata = tuple((k.lower(), v) for k, v in header.items())
    get_token = "on the head, `ray get-auth-token` prints it: put it in ~/.ray/auth_token here"
    if not metadata:
        raise UsageError(
            f"--ray {address}: the Ray head there wants an auth token, and this host has none",
            f"{get_token}, or set RAY_AUTH_TOKEN (README: Many hosts)",
        )
    if os.environ.get(AUTH_MODE_ENV, "").lower() == "disabled":
        raise UsageError(
            f"--ray {address}: the Ray head there wants an auth token, and {AUTH_MODE_ENV} "
            "is 'disabled' here",
            f"unset {AUTH_MODE_ENV} (or set it to 'token')",
        )
    if not _gcs_answers(address, metadata, timeout):
        raise UsageError(
            f"--ray {address}: the Ray head there refuses this host's auth token",
            f"{get_token} (README: Many hosts)",
        )
    os.environ[AUTH_MODE_ENV] = "token"  # for ray.init, and the processes it starts
    from ray._raylet import Config  # type: ignore[attr-defined,unused-ignore]

    Config.initialize("")  # Ray caches its config: read the mode again


def _gcs_answers(address: str, metadata: tuple[tuple[str, str], ...], timeout: float) -> bool:
    """Whether the GCS at *address* answers GetClusterId with *metadata* (False: it refuses
    for want of a, or a bad, token); a :class:`UsageError` when nothing answers as Ray."""
    import grpc  # type: ignore[import-untyped,unused-ignore]
    from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

    request: Any = gcs_service_pb2.GetClusterIdRequest  # type: ignore[attr-defined,unused-ignore]
    channel = grpc.insecure_channel(address)
    try:
        stub: Any = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)  # type: ignore[no-untyped-call,unused-ignore]
        stub.GetClusterId(request(), timeout=timeout, metadata=metadata)
        return True
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return False
        why = "no reply" if code == grpc.StatusCode.DEADLINE_EXCEEDED else str(code)
        raise UsageError(
            f"--ray {address}: something takes connections there, but it is not a Ray head "
            f"({why} within {timeout:g} s)",
            "point --ray at the head's GCS port (`ray start --head --port PORT`; README: "
            "Many hosts)",
        ) from None
    finally:
        channel.close()


def _env_on(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")
