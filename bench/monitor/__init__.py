"""Monitor mode: the month-to-date SLA of a live mail service, kept in SQLite (issue 18)."""
