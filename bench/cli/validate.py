"""``mailsla validate SCENARIO``: check a scenario file without running it."""

from __future__ import annotations

import click

from bench.cli.options import SET_OPTION, load_scenario


@click.command()
@click.argument("scenario", metavar="SCENARIO.toml")
@SET_OPTION
def validate(scenario: str, overrides: tuple[str, ...]) -> None:
    """Check a scenario file without running it."""
    sc = load_scenario(scenario, overrides)
    load_ = sc.load
    what = (
        f"{load_.model}, {load_.rate:g}/s"
        if load_.model in ("constant", "poisson")
        else load_.model
    )
    click.echo(f"ok: {scenario}: scenario {sc.name!r} ({what}, system {sc.system.kind})")
