"""What several commands share: loading a scenario with ``--set`` overrides, and the address
option callback."""

from __future__ import annotations

import click

from bench.config.fieldtypes import parse_address
from bench.config.scenario import Scenario, load

SET_OPTION = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a scenario key (dotted path; VALUE is TOML, else a string).",
)


def load_scenario(path: str, overrides: tuple[str, ...]) -> Scenario:
    """The scenario at *path* with *overrides*; a :class:`ScenarioError` (exit 2) otherwise."""
    return load(path, list(overrides))


def address_param(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, int]:
    """A click callback: *value* as (host, port), or a usage error naming the option."""
    try:
        return parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
