"""mailsla's measuring side: scenarios, schedules, generator, post office, metrics, SLA."""

__version__ = "0.1.0"
