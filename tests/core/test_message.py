"""bench.core.message: generated messages, their identity headers, and reading the identity back."""

from __future__ import annotations

import email
import email.policy
import email.utils

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.core.corpus import real_size_pool
from bench.core.message import (
    ID_DIGITS,
    RUN_MAX,
    SIZE_POOL,
    Identity,
    MessageFactory,
    parse_identity,
    tag_of,
)

RUN = "20240101T000000Z-quickstart"
PLANNED = 1_717_171_717_123_456_789  # wall-clock ns, 19 digits like any date this century


def factory(
    size: int = 2048, users: int = 100, recipients: int = 1, run: str = RUN
) -> MessageFactory:
    return MessageFactory(
        run,
        size=size,
        sender="load@sender.mailsla.test",
        domain="remote.test",
        users=users,
        recipients=recipients,
    )


def build(f: MessageFactory, seq: int, planned: int = PLANNED) -> bytes:
    return f.build(seq, f.recipients_of(seq), planned)


def lines_of(msg: bytes) -> list[bytes]:
    assert msg.endswith(b"\r\n")
    return msg[:-2].split(b"\r\n")


SIZES = [512, 1000, 2048, 4096, 10_000, 65_536, 1_048_576]


# -- size -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("seq", [0, 1, 4_321, 999_999_999])
def test_size_is_close_to_configured_and_never_above(size: int, seq: int) -> None:
    n = len(build(factory(size), seq))
    assert size - 40 <= n <= size


@pytest.mark.parametrize("size", SIZES)
def test_size_within_a_few_bytes_for_long_ids(size: int) -> None:
    f = factory(size, users=1000)
    n = len(f.build(1_000_000_000, ["user999@remote.test"], PLANNED))
    assert size - 4 <= n <= size


@pytest.mark.parametrize("size", [512, 2048, 4096])
def test_size_within_a_few_bytes_for_early_messages(size: int) -> None:
    assert abs(len(build(factory(size), 1)) - size) <= 8


def test_size_smaller_than_header_still_gives_a_message() -> None:
    msg = build(factory(10), 3)
    _, sep, body = msg.partition(b"\r\n\r\n")
    assert sep and body == b"\r\n"
    assert parse_identity(msg) == Identity(RUN, 3)


@given(st.integers(1_000, 20_000))
def test_body_grows_with_size(size: int) -> None:
    a, b = build(factory(size), 5), build(factory(size + 100), 5)
    assert len(b) - len(a) in range(98, 103)


# -- form -------------------------------------------------------------------------------------


@given(st.integers(0, 20_000), st.integers(0, 10**12))
def test_crlf_short_lines_no_leading_dot(size: int, seq: int) -> None:
    msg = build(factory(size), seq)
    assert msg.count(b"\n") == msg.count(b"\r\n") == msg.count(b"\r")
    for line in lines_of(msg):
        assert len(line) <= 998
        assert not line.startswith(b".")
    assert msg.isascii()


@pytest.mark.parametrize("recipients", [1, 5, 20])
def test_lines_short_with_several_recipients(recipients: int) -> None:
    msg = build(factory(4096, users=10_000, recipients=recipients), 7)
    assert max(len(line) for line in lines_of(msg)) <= 998


def test_lines_short_with_many_recipients() -> None:
    msg = build(factory(4096, users=10_000, recipients=100), 7)
    assert max(len(line) for line in lines_of(msg)) <= 998


def test_identity_headers_present() -> None:
    f = factory(2048, users=10, recipients=2)
    raw = build(f, 42)
    msg = email.message_from_bytes(raw, policy=email.policy.SMTP)
    assert msg["X-Mailsla-Run"] == RUN
    assert int(msg["X-Mailsla-Id"]) == 42  # zero-padded to a fixed width
    assert msg["X-Mailsla-Planned"] == str(PLANNED)
    assert msg["Message-ID"] == f"<0000000042.{RUN}@mailsla.test>"
    assert msg["From"] == "mailsla <load@sender.mailsla.test>"
    assert b"\r\nTo: <user4@remote.test>,\r\n <user5@remote.test>\r\n" in raw
    assert RUN in msg["Subject"] and "#0000000042" in msg["Subject"]
    sent = email.utils.parsedate_to_datetime(msg["Date"])
    assert int(sent.timestamp()) == PLANNED // 1_000_000_000
    assert msg.get_content_type() == "text/plain"
    assert raw.index(b"\r\n\r\n") < raw.index(b"mailsla synthetic load")


def test_date_follows_planned_second() -> None:
    f = factory()
    one = email.message_from_bytes(build(f, 1, PLANNED))
    two = email.message_from_bytes(build(f, 2, PLANNED + 61 * 10**9))
    again = email.message_from_bytes(build(f, 3, PLANNED))
    d1, d2 = (email.utils.parsedate_to_datetime(m["Date"]) for m in (one, two))
    assert (d2 - d1).total_seconds() == 61
    assert again["Date"] == one["Date"]


def test_message_ids_unique_per_seq() -> None:
    f = factory()
    ids = {email.message_from_bytes(build(f, s))["Message-ID"] for s in range(50)}
    assert len(ids) == 50


# -- parse_identity ---------------------------------------------------------------------------

runs = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.TZ", min_size=1, max_size=40)


@given(runs, st.integers(0, 10**ID_DIGITS - 1), st.integers(0, 5000))
def test_parse_identity_round_trip(run: str, seq: int, size: int) -> None:
    msg = factory(size, run=run).build(seq, ["user1@remote.test"], PLANNED)
    ident = parse_identity(msg)
    assert ident == Identity(run, seq)
    assert ident is not None and ident.genuine(b"k") is False  # the factory's key is b""
    assert ident.genuine(b"")


def test_identity_tag_proves_the_run_key() -> None:
    f = MessageFactory(
        "r1",
        key=b"secret",
        size=500,
        sender="a@b.test",
        domain="remote.test",
        users=5,
        recipients=1,
    )
    ident = parse_identity(f.build(7, ["user2@remote.test"], PLANNED))
    assert ident is not None and ident.genuine(b"secret")
    assert ident.tag == tag_of(b"secret", "r1", 7)
    assert not ident.genuine(b"another run's secret")
    forged = b"X-Mailsla-Run: r1\r\nX-Mailsla-Id: 0000000007\r\nX-Mailsla-Tag: 0123456789abcdef"
    forged_ident = parse_identity(forged)
    assert forged_ident == Identity("r1", 7) and not forged_ident.genuine(b"secret")
    assert parse_identity(forged.replace(b"\r\nX-Mailsla-Tag: 0123456789abcdef", b"")) is not None


@pytest.mark.parametrize(
    "header",
    [b"9" * (ID_DIGITS + 1), b"9" * 5000, b"12x", b"", "\u0663".encode()],
)
def test_identity_parsing_is_bounded(header: bytes) -> None:
    """An id wider than mailsla writes (or no number at all) is not ours: nothing is converted,
    nothing is sized by it."""
    assert parse_identity(b"X-Mailsla-Run: r1\r\nX-Mailsla-Id: " + header + b"\r\n\r\n") is None


def test_run_name_is_bounded() -> None:
    long = b"r" * (RUN_MAX + 1)
    assert parse_identity(b"X-Mailsla-Run: " + long + b"\r\nX-Mailsla-Id: 1\r\n\r\n") is None


def test_parse_identity_with_received_headers_prepended() -> None:
    msg = build(factory(), 77)
    relayed = (
        b"Received: from mta.local.test (localhost [127.0.0.1])\r\n"
        b"\tby postoffice.remote.test with ESMTP id 1234; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        b"Return-Path: <load@sender.mailsla.test>\r\n" + msg
    )
    assert parse_identity(relayed) == Identity(RUN, 77)


def test_parse_identity_with_lower_cased_names() -> None:
    head, sep, body = build(factory(), 12).partition(b"\r\n\r\n")
    lowered = b"\r\n".join(
        line.split(b":", 1)[0].lower() + b":" + line.split(b":", 1)[1]
        for line in head.split(b"\r\n")
    )
    assert b"x-mailsla-id: 0000000012" in lowered
    assert parse_identity(lowered + sep + body) == Identity(RUN, 12)


def test_parse_identity_with_lf_line_endings() -> None:
    msg = build(factory(), 9).replace(b"\r\n", b"\n")
    assert parse_identity(msg) == Identity(RUN, 9)


def test_parse_identity_headers_only() -> None:
    assert parse_identity(b"X-Mailsla-Run: r1\r\nX-Mailsla-Id: 3") == Identity("r1", 3)


@pytest.mark.parametrize(
    "msg",
    [
        b"",
        b"From: someone@example.com\r\nSubject: hi\r\n\r\nhello\r\n",
        b"X-Mailsla-Run: r1\r\n\r\nbody\r\n",
        b"X-Mailsla-Id: 5\r\n\r\nbody\r\n",
        b"X-Mailsla-Run: r1\r\nX-Mailsla-Id: five\r\n\r\nbody\r\n",
        b"X-Mailsla-Run: r1\r\nX-Mailsla-Id: -5\r\n\r\nbody\r\n",
        b"X-Mailsla-Run: r1\r\nX-Mailsla-Id:\r\n\r\nbody\r\n",
        b"Subject: fwd\r\n\r\nX-Mailsla-Run: r1\r\nX-Mailsla-Id: 5\r\n",
        b"X-Other: x X-Mailsla-Run: r1 X-Mailsla-Id: 5\r\n\r\n",
    ],
    ids=[
        "empty",
        "plain mail",
        "run only",
        "id only",
        "id not a number",
        "negative id",
        "empty id",
        "headers only in the body",
        "not at line start",
    ],
)
def test_parse_identity_none_for_mail_not_ours(msg: bytes) -> None:
    assert parse_identity(msg) is None


# -- recipients -------------------------------------------------------------------------------


def test_recipients_round_robin() -> None:
    f = factory(users=5, recipients=2)
    assert f.recipients_of(0) == ["user0@remote.test", "user1@remote.test"]
    assert f.recipients_of(1) == ["user2@remote.test", "user3@remote.test"]
    assert f.recipients_of(2) == ["user4@remote.test", "user0@remote.test"]


@given(st.integers(1, 200), st.integers(1, 10), st.integers(0, 10**9))
def test_recipients_spread_evenly_over_users(users: int, recipients: int, start: int) -> None:
    f = factory(users=users, recipients=recipients)
    counts = [0] * users
    for seq in range(start, start + users):
        rcpts = f.recipients_of(seq)
        assert len(rcpts) == recipients
        if recipients <= users:
            assert len(set(rcpts)) == recipients
        for r in rcpts:
            local, _, domain = r.partition("@")
            assert domain == "remote.test"
            counts[int(local.removeprefix("user"))] += 1
    # `users` consecutive messages reach every mailbox exactly `recipients` times.
    assert counts == [recipients] * users


@given(
    seq=st.integers(0, 10**9),
    recipients=st.integers(1, 5),
    users=st.integers(1, 50),
    size=st.integers(0, 5000),
    run=st.sampled_from(["r1", "20261129T0101Z-a%b", "x%%y%s"]),
)
def test_fast_path_bytes_equal_the_general_ones(
    seq: int, recipients: int, users: int, size: int, run: str
) -> None:
    """payload() and envelope() (the generator's hot path) make exactly what build() and
    recipients_of() make, '%' in names included."""
    f = MessageFactory(
        run,
        size=size,
        sender="lo%ad@s.test",
        domain="remote.test",
        users=users,
        recipients=recipients,
    )
    planned = 1_795_000_000_123_456_789 + seq
    rcpts = f.recipients_of(seq)
    assert f.payload(seq, planned) == f.build(seq, rcpts, planned) + b".\r\n"
    assert f.envelope(seq) == [
        b"MAIL FROM:<lo%ad@s.test>\r\n",
        *(b"RCPT TO:<" + r.encode() + b">\r\n" for r in rcpts),
        b"DATA\r\n",
    ]


def test_real_sizes_without_a_mix_follow_the_pool_and_stay_parseable() -> None:
    cap = 64 * 1024
    f = MessageFactory(
        RUN,
        size=cap,
        sender="load@sender.mailsla.test",
        domain="remote.test",
        users=100,
        recipients=1,
        sizes="real",
    )
    pool = real_size_pool(SIZE_POOL, cap)
    for seq in range(SIZE_POOL):
        data = build(f, seq)
        assert abs(len(data) - pool[seq]) <= 64  # the header's width varies by a few bytes
        assert data + b".\r\n" == f.payload(seq, PLANNED)
        ident = parse_identity(data)
        assert ident is not None and ident.id == seq
        assert len(data) <= f.max_size
    assert len({len(build(f, s)) for s in range(SIZE_POOL)}) > 20  # sizes vary
