"""What the command modules of the `mfax` CLI share: argument parsing helpers.

The command modules (`mfax.cli_train`, `mfax.cli_pipeline`) import this module,
never `mfax.cli`, which builds the app and registers their commands.
"""

from __future__ import annotations

import typer

#: seeds are 32-bit: a larger one would alias a smaller one (jax.random.key)
SEED_MAX = 2**32 - 1


def parse_assignments(items: list[str] | None, flag: str) -> dict:
    """Parse ``key=value`` pairs; values are read as YAML (numbers in every notation such as
    ``1e-3``, booleans, lists, null) by `mfax.io.parse_value`."""
    import yaml

    from mfax.io import parse_value

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not of the form key=value", param_hint=flag)
        try:
            out[key.strip()] = parse_value(value)
        except yaml.YAMLError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise typer.BadParameter(
                f"{item!r}: the value is not valid YAML ({first})", param_hint=flag
            ) from None
    return out


def make_game_from_cli(game: str, params: list[str] | None):
    """The game ``game`` with the ``--param key=value`` overrides; a bad one is a usage error."""
    from mfax.games import make_game

    try:
        return make_game(game, **parse_assignments(params, "--param"))
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--game/--param") from None


def command_group() -> typer.Typer:
    """A group of commands for a command module; `mfax.cli` merges it into the app."""
    return typer.Typer(add_completion=False)


__all__ = ["SEED_MAX", "command_group", "make_game_from_cli", "parse_assignments"]
