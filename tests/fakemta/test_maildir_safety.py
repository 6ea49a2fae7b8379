"""The fake MTA's MDA follows no link below its mailbox root, at set-up or at delivery, and no
address steers a delivery out of the root: a mailbox is a configured user's name, never a
local part."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from bench.config.delays import parse_delay
from bench.observe.postoffice import PostOffice
from fakemta.maildir import Maildirs, deliver_one, make_maildir, open_root
from fakemta.server import FakeMta, FakeMtaConfig, StartError
from tests.conftest import Arrivals, until

USERS = ("user0", "user1")
BODY = b"Subject: s\r\n\r\nhello\r\n"
Start = Callable[..., Any]


def files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(the mailbox root, a folder elsewhere that nothing may touch)."""
    root, elsewhere = tmp_path / "mail", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    return root, elsewhere


@pytest.fixture
async def start(postoffice: tuple[PostOffice, Arrivals]) -> AsyncIterator[Start]:
    po, _ = postoffice
    started: list[FakeMta] = []

    async def make(root: Path) -> FakeMta:
        mta = FakeMta(
            FakeMtaConfig(
                relay_host="127.0.0.1",
                relay_port=po.port,
                local_users=USERS,
                mailbox_root=str(root),
                delivery_delay=parse_delay("const(0ms)"),
            )
        )
        await mta.start()
        started.append(mta)
        return mta

    yield make
    for mta in started:
        await mta.stop()


@pytest.mark.parametrize("planted", ["user0", "user0/new", "user0/tmp", "user0/cur"])
async def test_a_symlink_in_the_tree_is_refused_at_start(
    start: Start, layout: tuple[Path, Path], planted: str
) -> None:
    root, elsewhere = layout
    if planted != "user0":
        for sub in ("tmp", "new", "cur"):
            (root / "user0" / sub).mkdir(parents=True, exist_ok=True)
        (root / planted).rmdir()
    (root / planted).symlink_to(elsewhere)
    with pytest.raises(StartError, match=r"symlink or a file.*not followed"):
        await start(root)
    assert list(elsewhere.iterdir()) == []  # nothing made there, nothing chowned


async def test_a_file_where_a_mailbox_goes_is_refused(
    start: Start, layout: tuple[Path, Path]
) -> None:
    root, _ = layout
    (root / "user1").write_text("not a folder")
    with pytest.raises(StartError, match="user1"):
        await start(root)


@pytest.mark.parametrize("planted", ["user0", "user0/new", "user0/tmp"])
async def test_a_symlink_planted_after_start_is_not_delivered_through(
    start: Start, layout: tuple[Path, Path], planted: str
) -> None:
    root, elsewhere = layout
    mta = await start(root)
    shutil.rmtree(root / planted)
    (root / planted).symlink_to(elsewhere)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False) as c:
        await c.sendmail("a@x.test", ["user0@local.test", "user1@local.test"], BODY)
    assert mta.local is not None
    stats = mta.local.stats
    await until(lambda: stats.delivered + stats.failed == 2)
    assert (stats.delivered, stats.failed) == (1, 1)
    assert files(elsewhere) == []
    assert [p.parent.name for p in files(root / "user1")] == ["new"]


@pytest.mark.parametrize(
    "address",
    [
        "../x@local.test",
        "..@local.test",
        "user0/../user1@local.test",
        "../../etc/passwd@local.test",
        '"../user1"@local.test',
        "user0/new@local.test",
        ".@local.test",
    ],
)
async def test_a_local_part_cannot_steer_a_delivery(
    start: Start, layout: tuple[Path, Path], address: str
) -> None:
    root, _ = layout
    mta = await start(root)
    before = files(root.parent)
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=mta.port, start_tls=False) as c:
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await c.sendmail("a@x.test", [address], BODY)
    assert refused.value.recipients[0].code in (550, 553, 501)
    assert mta.local is not None and mta.local.stats.queued == 0
    assert files(root.parent) == before


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "a\0b"])
def test_a_mailbox_name_is_one_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="cannot be a mailbox name"):
        Maildirs(str(tmp_path), (name,), "h.test")
    root = open_root(str(tmp_path))
    try:
        with pytest.raises(ValueError, match="cannot be a mailbox name"):
            make_maildir(root, name)
        with pytest.raises(ValueError, match="cannot be a mailbox name"):
            deliver_one(root, name, "m1", b"", b"x")
    finally:
        os.close(root)
    assert list(tmp_path.iterdir()) == []


def test_delivery_writes_below_the_root_only(layout: tuple[Path, Path]) -> None:
    root, _ = layout
    fd = open_root(str(root))
    try:
        make_maildir(fd, "user0")
        path = deliver_one(fd, "user0", "m1", b"Delivered-To: u\r\n", b"x\r\n", 0o600)
        (root / "user0" / "tmp" / "m2").symlink_to(root.parent / "elsewhere" / "m2")
        with pytest.raises(FileExistsError):  # O_EXCL | O_NOFOLLOW: never through a link
            deliver_one(fd, "user0", "m2", b"", b"x")
    finally:
        os.close(fd)
    assert path == os.path.join("user0", "new", "m1")
    assert (root / path).read_bytes() == b"Delivered-To: u\r\nx\r\n"
    assert oct((root / path).stat().st_mode & 0o777) == "0o600"
    assert list((root.parent / "elsewhere").iterdir()) == []
