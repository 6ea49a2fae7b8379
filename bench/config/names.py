"""The names scenarios, thresholds and results use for what mailsla measures: the SMTP
stages timed, and the latency metrics. Pure."""

from __future__ import annotations

from typing import Literal

# The lanes of traffic: users submitting ("send"), and mail coming in from outside ("receive").
Direction = Literal["send", "receive"]

STAGES = ("connect", "banner", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "dot")
CONNECTION_STAGES = STAGES[:5]

TIME_METRICS = (
    "submit_latency",
    "service_time",
    "schedule_lag",
    "send_delay",
    "delivery_delay",
    "receive_delay",
)
_LANE_METRICS = (*TIME_METRICS[:3], *(f"stage.{s}" for s in STAGES))
KNOWN_METRICS = (*TIME_METRICS, *_LANE_METRICS[3:], *(f"inbound.{m}" for m in _LANE_METRICS))

# SLA profiles a scenario can name in sla.profile (bench.verdict.sla judges them).
PROFILES = ("exmail", "google", "exchange", "none")
