"""The ``mailsla`` command group: one subcommand a module beside this one, all ending through
:class:`bench.cli.handler.MailslaGroup` (the one place that prints an error and exits)."""

from __future__ import annotations

import click

from bench.cli.capacity import capacity
from bench.cli.compare import compare_cmd
from bench.cli.fakemta import fakemta
from bench.cli.handler import EXIT_CODES_HELP, MailslaGroup
from bench.cli.monitor import monitor
from bench.cli.postfix import postfix
from bench.cli.report import report
from bench.cli.run import run
from bench.cli.selftest import selftest
from bench.cli.validate import validate
from bench.version import version_line


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_line())
        ctx.exit()


@click.group(
    cls=MailslaGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES_HELP,
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version (and the git commit) and exit.",
)
def main() -> None:
    """Load-test a mail system with real SMTP and judge it against an email-hosting SLA."""


for command in (validate, run, compare_cmd, report, selftest, fakemta, postfix, monitor, capacity):
    main.add_command(command)
