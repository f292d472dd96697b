"""The `mfax` command line.

Commands live in small modules next to the code they drive and are
registered here: core commands below, training/evaluation in
`mfax.cli_train`, the pipeline helpers in `mfax.cli_pipeline`.
"""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="mfax: mean-field games in JAX.")


def parse_assignments(items: list[str] | None, flag: str) -> dict:
    """Parse ``key=value`` pairs; values are read as YAML (numbers, booleans, lists, null)."""
    import yaml

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not of the form key=value", param_hint=flag)
        out[key.strip()] = yaml.safe_load(value)
    return out


@app.command()
def games() -> None:
    """List the games and their default parameters."""
    from mfax.games import make_game, list_games

    for name in list_games():
        game = make_game(name)
        typer.echo(f"{name}: S={game.num_states} A={game.num_actions} T={game.horizon}")
        for key, value in game.params.to_dict().items():
            typer.echo(f"    {key} = {value}")


from mfax import cli_train  # noqa: E402,F401  (registers `train` and `evaluate`)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
