"""Nanosecond wake-ups: a Linux ``timerfd`` in the event loop. mailsla's generator wakes
planned sends with it, and the fake MTA releases held messages with it (so a message is never
relayed before its processing delay is over).

The event loop's own timers (libuv's under uvloop) have millisecond granularity: a send
planned 3.4 ms ahead goes out 0–1 ms late, and that lateness lands in every latency counted
from the planned time (submit_latency's p99 gained ~1.3 ms at 1,500 msgs/s this way — the
docs/performance.md has the measurement). A :class:`Pacer` keeps the planned wake-ups
in a heap and arms one ``timerfd`` (``CLOCK_MONOTONIC``, the clock of ``time.monotonic_ns``,
absolute time) for the earliest; the loop watches the descriptor like a socket. Where timerfd
is not available (not Linux), it falls back to the loop's timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import heapq
import itertools
import os
import time
from collections.abc import Callable

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
NS = 1_000_000_000


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create  # noqa: B018 - present on Linux only
        libc.timerfd_settime  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


class Wakeup:
    """A planned wake-up; :meth:`cancel` drops it."""

    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Pacer:
    """Calls callbacks at monotonic nanosecond times, never before them."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, timerfd: bool = True) -> None:
        self.loop = loop
        self._heap: list[tuple[int, int, Wakeup]] = []
        self._order = itertools.count()
        self._libc = _libc() if timerfd else None
        self._fd = -1
        self._spec = _Itimerspec()
        if self._libc is not None:
            fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                # Timer slack is left alone: a timerfd is not subject to it, and a 1 ns slack
                # for the whole process, which children such as the fake MTA inherit, made
                # their latency worse (send_delay p99 0.6-1.2 ms became 8.5-11 ms).
                self._fd = fd
                loop.add_reader(fd, self._expired)
        self._fallback: asyncio.TimerHandle | None = None

    @property
    def precise(self) -> bool:
        """Whether wake-ups use the timerfd (else the loop's millisecond timers)."""
        return self._fd >= 0

    def call_at(self, when_ns: int, callback: Callable[[], None]) -> Wakeup:
        """Call *callback* at monotonic time *when_ns* or just after."""
        w = Wakeup(callback)
        heapq.heappush(self._heap, (when_ns, next(self._order), w))
        if self._heap[0][2] is w:
            self._arm(when_ns)
        return w

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> Wakeup:
        """Call *callback* *delay_s* seconds from now, never sooner."""
        return self.call_at(time.monotonic_ns() + round(delay_s * NS), callback)

    def close(self) -> None:
        if self._fd >= 0:
            self.loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._fallback is not None:
            self._fallback.cancel()
        self._heap.clear()

    def _arm(self, when_ns: int) -> None:
        if self._fd >= 0:
            assert self._libc is not None
            spec = self._spec
            spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(max(when_ns, 1), NS)
            self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None)
            return
        if self._fallback is not None:
            self._fallback.cancel()
        delay = (when_ns - time.monotonic_ns()) / 1e9
        self._fallback = self.loop.call_later(max(delay, 0.0), self._expired)

    def _expired(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(BlockingIOError):  # re-armed since it fired
                os.read(self._fd, 8)
        self._fallback = None
        heap = self._heap
        now = time.monotonic_ns()
        while heap and heap[0][0] <= now:
            w = heapq.heappop(heap)[2]
            if not w.cancelled:
                try:
                    w.callback()
                except Exception as exc:  # one failing callback must not strand the others
                    self.loop.call_exception_handler(
                        {"message": "Pacer callback failed", "exception": exc}
                    )
            now = time.monotonic_ns()
        while heap and heap[0][2].cancelled:
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])


def resolve(fut: asyncio.Future[None]) -> None:
    """Wake whoever awaits *fut* (once)."""
    if not fut.done():
        fut.set_result(None)
