"""Clocks and pauses: the nanosecond pacer (timerfd) and the start-up garbage-collector freeze."""
