"""What ``mailsla fakemta`` takes beyond the fake MTA's own settings: its limits (Postfix's by
default, as options), whether an address may be off loopback, and where the AUTH users come from
(a file or the environment, which ``ps`` does not show; ``--auth`` with a warning)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from typing import TypedDict, TypeVar

import click

from bench.config.delays import parse_duration
from bench.config.units import parse_size
from bench.errors import UsageError

AUTH_ENV = "MAILSLA_FAKEMTA_AUTH"
T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., object])

_OPTIONS = (
    click.option(
        "--queue-bytes-limit",
        default="1GiB",
        show_default=True,
        metavar="SIZE",
        help="Hold at most SIZE of messages; then 452 4.3.1 after the end of DATA.",
    ),
    click.option(
        "--recipient-limit",
        metavar="N",
        type=click.IntRange(1, 1_000_000),
        default=1000,
        show_default=True,
        help="Recipients per message (smtpd_recipient_limit); then 452 4.5.3.",
    ),
    click.option(
        "--line-length-limit",
        metavar="N",
        type=click.IntRange(512, 1 << 20),
        default=2048,
        show_default=True,
        help="Bytes of a command line (line_length_limit); then 500 5.5.2.",
    ),
    click.option(
        "--message-size-limit",
        default="10240000",
        show_default=True,
        metavar="SIZE",
        help="The largest message (message_size_limit), advertised as SIZE; then 552 5.3.4.",
    ),
    click.option(
        "--error-limit",
        metavar="N",
        type=click.IntRange(1, 1_000_000),
        default=20,
        show_default=True,
        help="Errors in a session (smtpd_hard_error_limit); then 421 4.7.0 and close.",
    ),
    click.option(
        "--idle-timeout",
        default="300s",
        show_default=True,
        metavar="DURATION",
        help="Silence before a session is closed (smtpd_timeout), with 421 4.4.2.",
    ),
    click.option(
        "--allow-remote",
        is_flag=True,
        help="Allow listening and relaying off loopback (refused otherwise, as run refuses).",
    ),
)


def limit_options(command: F) -> F:
    """The options of the limits, and --allow-remote, on *command*."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


class LimitsConfig(TypedDict):
    """The fake MTA's limits as :class:`fakemta.config.FakeMtaConfig` takes them."""

    queue_bytes_limit: int
    recipient_limit: int
    line_length_limit: int
    message_size_limit: int
    error_limit: int
    idle_timeout: float


def _parsed(option: str, parse: Callable[[str], T], text: str) -> T:
    try:
        return parse(text)
    except (ValueError, OverflowError) as exc:
        raise UsageError(f"{option}: {exc}") from None


def limits_config(
    *,
    queue_bytes_limit: str,
    recipient_limit: int,
    line_length_limit: int,
    message_size_limit: str,
    error_limit: int,
    idle_timeout: str,
) -> LimitsConfig:
    """The limits from their options; a :class:`UsageError` naming the option otherwise."""
    queue_bytes = _parsed("--queue-bytes-limit", parse_size, queue_bytes_limit)
    if queue_bytes < 1:
        raise UsageError("--queue-bytes-limit: must be at least 1 byte")
    size = _parsed("--message-size-limit", parse_size, message_size_limit)
    if not 1 <= size <= 1 << 32:
        raise UsageError(f"--message-size-limit: {message_size_limit!r} must be 1 B to 4 GiB")
    idle = _parsed("--idle-timeout", parse_duration, idle_timeout)
    if not 0 < idle <= 86_400:
        raise UsageError(f"--idle-timeout: {idle_timeout!r} must be more than 0 s, at most 1 day")
    return {
        "queue_bytes_limit": queue_bytes,
        "recipient_limit": recipient_limit,
        "line_length_limit": line_length_limit,
        "message_size_limit": size,
        "error_limit": error_limit,
        "idle_timeout": idle,
    }


def loopback(host: str) -> bool:
    """Whether *host* is this machine's loopback (a name other than localhost: not known)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_local(addresses: list[tuple[str, tuple[str, int]]]) -> None:
    """A :class:`UsageError` for the first (option, address) off loopback."""
    for option, (host, _) in addresses:
        if not loopback(host):
            raise UsageError(
                f"{option}: {host} is not a loopback address; give --allow-remote to use it"
            )


def auth_users(auth: tuple[str, ...], auth_file: str | None) -> list[tuple[str, str]]:
    """The AUTH users of --auth-file, then MAILSLA_FAKEMTA_AUTH, then --auth (one
    USER:PASSWORD a line); --auth is warned about (ps shows it)."""
    from fakemta.tls import parse_users

    users: list[tuple[str, str]] = []
    try:
        if auth_file is not None:
            try:
                with open(auth_file, encoding="utf-8") as f:
                    text = f.read(1 << 20)
            except (OSError, UnicodeError) as exc:
                raise UsageError(f"--auth-file: cannot read {auth_file}: {exc}") from None
            users += parse_users(text, f"--auth-file {auth_file}")
        users += parse_users(os.environ.get(AUTH_ENV, ""), AUTH_ENV)
        users += parse_users("\n".join(auth), "--auth")
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if auth:
        click.echo(
            "fakemta: warning: --auth puts the password on the command line, where ps shows "
            f"it to everyone on this machine; use --auth-file PATH or {AUTH_ENV}",
            err=True,
        )
    return users
