"""The ``[monitor]`` section: ``mailsla monitor``'s probe load, database, month and
``/metrics`` address (issue 18). Beside :mod:`bench.config.sections`, which holds the run's."""

from __future__ import annotations

from pydantic import Field, field_validator

from bench.config.fieldtypes import Address, Duration
from bench.config.sections import _Model


class MonitorConfig(_Model):
    """``mailsla monitor``: the endless probe load (issue 18). ``rate`` probes a minute (bounded:
    at most 600); ``window`` is the SLA minute (shorter only to simulate a month in tests);
    a probe not seen by ``deadline`` is lost, one seen after ``late`` is late."""

    rate: float = Field(default=6.0, gt=0, le=600.0)
    database: str = "results/monitor.sqlite"
    timezone: str = "UTC"
    boundary_day: int = Field(default=1, ge=1, le=28)
    listen: Address | None = ("127.0.0.1", 9469)
    delete_seen: bool = True
    allow_remote: bool = False  # /metrics off loopback
    window: Duration = Field(default=60.0, gt=0, le=3600.0)
    deadline: Duration = Field(default=3600.0, gt=0)
    late: Duration = Field(default=60.0, gt=0)
    poll_interval: Duration = Field(default=0.2, gt=0, le=60.0)  # IMAP: each mailbox's poll

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name like Europe/Berlin)") from None
        return v
