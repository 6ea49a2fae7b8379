"""The fast address parser must agree with aiosmtpd's own on every input."""

from __future__ import annotations

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import example, given, settings
from hypothesis import strategies as st

from fakemta.fastsmtp import FastSMTP
from fakemta.server import FakeMta


class _Bare:
    """Just enough of an SMTP instance for _getaddr (it reads local_part_limit only)."""

    def __init__(self, limit: int) -> None:
        self.local_part_limit = limit


def _call(f: object, arg: str, limit: int) -> object:
    try:
        return f(_Bare(limit), arg)  # type: ignore[operator]
    except Exception as exc:  # aiosmtpd's parser raises on some inputs (e.g. '"'): so must we
        return ("raised", type(exc))


def both(arg: str, limit: int = 0) -> tuple[object, object]:
    return _call(FastSMTP._getaddr, arg, limit), _call(SMTP._getaddr, arg, limit)


VALID = [
    "<user@remote.test>",
    "<user@remote.test> SIZE=1024 BODY=8BITMIME",
    "<first.last+tag@sub.domain-x.example>",
    "<a@b>",
    "<o'hara@x.test>",
    "<weird!#$%&'*+/=?^_`{|}~-@x.test>",
]
INVALID = [
    "<>",
    "<user@remote.test",
    "user@remote.test",
    "<user@@remote.test>",
    "<.user@remote.test>",
    "<user.@remote.test>",
    "<us..er@remote.test>",
    '<"quoted local"@remote.test>',
    "<user@[127.0.0.1]>",
    "<user@-bad.test>",
    "<user@remote.test>trailing",
    "<@relay.test:user@remote.test>",
    "< user@remote.test >",
    "<user@remote.test>\tSIZE=1",
    "",
]


@pytest.mark.parametrize("arg", VALID + INVALID)
def test_agrees_on_known_cases(arg: str) -> None:
    fast, orig = both(arg)
    assert fast == orig


def test_the_fast_path_is_taken_for_ordinary_addresses() -> None:
    # If it were not, the test above would compare aiosmtpd with itself.
    assert FastSMTP._getaddr.__code__ is not SMTP._getaddr.__code__
    from fakemta.fastsmtp import _SIMPLE

    for arg in VALID:
        assert _SIMPLE.match(arg), arg


def test_local_part_limit_is_kept() -> None:
    arg = "<" + "a" * 70 + "@x.test>"
    fast, orig = both(arg, limit=64)
    assert fast == orig == (None, None)


ADDRESSY = st.text(alphabet="ab.@<>-+\"' \t[]:!_=1", max_size=24)


@settings(max_examples=3000, deadline=None)
@given(ADDRESSY)
@example("<a@b>x")
@example("<a.b@c-d.e> X=1")
def test_agrees_on_generated_inputs(arg: str) -> None:
    fast, orig = both(arg)
    assert fast == orig


@settings(max_examples=500, deadline=None)
@given(
    st.from_regex(
        r"\A<[a-z0-9.+-]{1,12}@[a-z0-9.-]{1,12}>( [A-Z]{1,5}=[0-9]{1,4})?\Z", fullmatch=True
    )
)
def test_agrees_on_generated_plausible_addresses(arg: str) -> None:
    fast, orig = both(arg)
    assert fast == orig


async def test_fake_mta_advertises_pipelining(fakemta: FakeMta) -> None:
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=fakemta.port, local_hostname="c.test", start_tls=False
    )
    await client.connect()
    await client.ehlo()
    assert "pipelining" in client.esmtp_extensions
    await client.quit()
