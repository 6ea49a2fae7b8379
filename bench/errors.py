"""The one way out: mailsla's exit codes and the root of every error it raises on purpose.

Every error type of the project (scenario, threshold, compare, tolerance, start-up, worker,
watcher, harness, selftest, the fake MTA's own) inherits from :class:`MailslaError`, which
carries the exit code the command ends with. Only the CLI's handler (:mod:`bench.cli.handler`)
prints an error and exits; everything else raises.

Pure: no I/O.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """How a ``mailsla`` command ends (listed in ``mailsla --help`` and the README)."""

    PASS = 0  # every SLA check and threshold passed (or the command did what it was asked)
    FAIL = 1  # an SLA check or threshold failed, or a comparison found a regression
    USAGE = 2  # bad usage or scenario: the message names the file, the field and why
    RUN = 3  # the run could not be carried out or was interrupted (results still written)

    @classmethod
    def of_run(cls, *, completed: bool, passed: bool) -> ExitCode:
        """A run's code: RUN unless it completed, then PASS or FAIL by its verdict."""
        if not completed:
            return cls.RUN
        return cls.PASS if passed else cls.FAIL


class MailslaError(Exception):
    """An error mailsla raises on purpose, with the exit code it ends the command with.

    *lines*: the first says what went wrong, the rest give details (printed indented).
    """

    exit_code: ExitCode = ExitCode.RUN

    def __init__(self, *lines: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(*lines)
        if exit_code is not None:
            self.exit_code = exit_code

    def lines(self) -> list[str]:
        """What the CLI prints: one line, then details."""
        text = "\n".join(str(a) for a in self.args) or type(self).__name__
        return text.splitlines() or [type(self).__name__]


class UsageError(MailslaError):
    """Bad usage: a wrong option, a bad scenario or threshold, unreadable input (exit 2)."""

    exit_code = ExitCode.USAGE


class RunError(MailslaError):
    """The run (or server, or measurement) could not be carried out (exit 3)."""

    exit_code = ExitCode.RUN


class StartupError(RunError):
    """A part of a run did not start: the post office, the system, its mailboxes, a worker."""
