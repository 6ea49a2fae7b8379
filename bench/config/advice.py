"""What ``mailsla validate`` warns about: a valid scenario whose run may not mean what it says
(an outage running on into the drain or past the end, fake MTA settings a real system ignores,
thresholds that cannot act or judge as written). Pure.

A scenario that cannot mean what it says at all (an outage that begins after sending ends) is
refused by :class:`~bench.config.scenario.Scenario` itself; these are only warnings, because
each can be what the user wants (an outage that the drain sees end, for one).
"""

from __future__ import annotations

from bench.config.scenario import LoadConfig, Scenario
from bench.config.units import format_duration as fmt


def warnings(sc: Scenario) -> list[str]:
    """One line for each doubtful thing in *sc*, each naming its field."""
    out: list[str] = []
    if sc.system.kind == "fakemta":
        out += _outage_warnings(sc)
    else:
        for key in ("faults", "outages"):
            if getattr(sc.fakemta, key):
                out.append(
                    f'fakemta.{key}: ignored with system.kind = "smtp" (only the embedded '
                    "fake MTA injects them)"
                )
        if sc.fakemta.filter is not None:
            out.append(
                'fakemta.filter: ignored with system.kind = "smtp" (the system\'s own filters '
                "judge the labelled traffic)"
            )
    if sc.fakemta.filter is not None and sc.message.mix is None:
        out.append("fakemta.filter: no message.mix, so nothing measures what it does")
    out += _threshold_warnings(sc)
    return out


def last_send_s(load: LoadConfig) -> float | None:
    """About when the last planned send goes out when ``load.max_messages`` ends sending
    before the duration does (None when it does not, or for the closed model)."""
    cap = load.max_messages
    if cap is None or load.model == "closed":
        return None
    if load.model != "steps":
        t = cap / load.rate
        return t if t < load.duration else None
    start, left = 0.0, float(cap)
    for step in load.steps:
        n = step.rate * step.duration
        if left <= n:
            return start + left / step.rate
        left -= n
        start += step.duration
    return None


def _outage_warnings(sc: Scenario) -> list[str]:
    out: list[str] = []
    sending, drain = sc.load.sending_s, sc.load.drain
    last = last_send_s(sc.load)
    for i, o in enumerate(sc.fakemta.outages):
        where = f"fakemta.outages[{i}]"
        span = f"{o.kind} from {fmt(o.at)} to {fmt(o.at + o.duration)}"
        end = o.at + o.duration
        if last is not None and o.at >= last:
            out.append(
                f"{where}.at: {fmt(o.at)} is after the last planned send (about "
                f"{fmt(round(last, 3))}: load.max_messages = {sc.load.max_messages}): "
                "the outage meets no new message"
            )
        elif end > sending + drain:
            out.append(
                f"{where}: {span} is still on when the run ends (sending {fmt(sending)} + "
                f"drain {fmt(drain)}): the run never sees the system recover"
            )
        elif end > sending:
            out.append(
                f"{where}: {span} outlasts the sending ({fmt(sending)}) by "
                f"{fmt(round(end - sending, 6))}: that part falls in the drain, when nothing "
                "new is sent"
            )
    return out


def _threshold_warnings(sc: Scenario) -> list[str]:
    out: list[str] = []
    sending, drain = sc.load.sending_s, sc.load.drain
    run = sending + drain
    for i, t in enumerate(sc.sla.thresholds):
        where = f"sla.thresholds[{i}]: {t.text!r}"
        if t.abort_on_fail and t.grace_s >= run:
            out.append(
                f"{where}: grace {fmt(t.grace_s)} is not shorter than the run (sending "
                f"{fmt(sending)} + drain {fmt(drain)}): abort_on_fail can never stop it"
            )
        elif t.abort_on_fail and t.grace_s >= sending:
            out.append(
                f"{where}: grace {fmt(t.grace_s)} is not shorter than the sending "
                f"({fmt(sending)}): abort_on_fail can stop the run only in the drain"
            )
        if t.window_s is not None and t.window_s > run:
            out.append(
                f"{where}: the window ({fmt(t.window_s)}) is longer than the whole run "
                f"(sending {fmt(sending)} + drain {fmt(drain)}): it judges one partial window"
            )
    return out
