"""The one way out of the ``mailsla`` command: every command returns an :class:`ExitCode` or
raises a :class:`~bench.errors.MailslaError`; this handler prints the error's lines and exits
with its code. No other module of mailsla exits."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from bench.errors import ExitCode, MailslaError

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(
    f"  {int(code)}  {why}"
    for code, why in (
        (ExitCode.PASS, "every SLA check and threshold passed"),
        (ExitCode.FAIL, "an SLA check or threshold failed, or a stat regressed"),
        (ExitCode.USAGE, "bad usage or scenario (the message names the file, field and why)"),
        (ExitCode.RUN, "the run could not be carried out or was interrupted"),
    )
)


def print_error(lines: list[str] | str, *, word: str = "error", style: str = "bold red") -> None:
    """Print an error (the first line says what, the rest give details) to stderr."""
    err = Console(stderr=True, highlight=False)
    pad = " " * (len(word) + 1)
    for i, text in enumerate([lines] if isinstance(lines, str) else lines):
        line = escape(text)  # plain text: "mailsla[ray]" or "[::1]:25" is no markup
        err.print(f"[{style}]{word}:[/] {line}" if i == 0 else f"{pad} {line}", soft_wrap=True)


def print_warning(line: str) -> None:
    """One warning line on stderr (for what costs the run neither its results nor its code)."""
    print_error(line, word="warning", style="bold yellow")


class MailslaGroup(click.Group):
    """A click group whose commands end through one handler: a returned :class:`ExitCode`
    becomes the process's exit status; a :class:`MailslaError` is printed and exits with its
    code; Ctrl-C that reaches it (a command not yet running, or one that does not catch it:
    joining a Ray cluster, say) exits 3 as an interruption, never 1, which is a verdict.
    Click's own usage errors already exit 2, which is :attr:`ExitCode.USAGE`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            rv = super().invoke(ctx)
        except MailslaError as exc:
            print_error(exc.lines())
            ctx.exit(int(exc.exit_code))
        except KeyboardInterrupt:  # before a run handles SIGINT itself (Click would exit 1)
            print_error("interrupted (SIGINT) before it could finish: nothing was judged")
            ctx.exit(int(ExitCode.RUN))
        if isinstance(rv, ExitCode):
            ctx.exit(int(rv))
        return rv
