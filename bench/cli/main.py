"""The ``mailsla`` command group: one subcommand a module beside this one, all ending through
:class:`bench.cli.handler.MailslaGroup` (the one place that prints an error and exits)."""

from __future__ import annotations

import click

from bench import __version__
from bench.cli.compare import compare_cmd
from bench.cli.fakemta import fakemta
from bench.cli.handler import EXIT_CODES_HELP, MailslaGroup
from bench.cli.postfix import postfix
from bench.cli.report import report
from bench.cli.run import run
from bench.cli.selftest import selftest
from bench.cli.validate import validate


@click.group(
    cls=MailslaGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.version_option(__version__, prog_name="mailsla")
def main() -> None:
    """Load-test a mail system with real SMTP and judge it against an email-hosting SLA."""


for command in (validate, run, compare_cmd, report, selftest, fakemta, postfix):
    main.add_command(command)
