"""The `mfax` command line.

Commands live in small modules next to the code they drive and are
registered here: core commands below, training/evaluation in
`mfax.cli_train`, the pipeline helpers in `mfax.cli_pipeline`.
"""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="mfax: mean-field games in JAX.")
#: seeds are 32-bit: a larger one would alias a smaller one (jax.random.key)
SEED_MAX = 2**32 - 1


def parse_assignments(items: list[str] | None, flag: str) -> dict:
    """Parse ``key=value`` pairs; values are read as YAML (numbers in every notation such as
    ``1e-3``, booleans, lists, null) by `mfax.userio.parse_value`."""
    import yaml

    from mfax.userio import parse_value

    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not of the form key=value", param_hint=flag)
        try:
            out[key.strip()] = parse_value(value)
        except yaml.YAMLError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise typer.BadParameter(f"{item!r}: the value is not valid YAML ({first})",
                                     param_hint=flag) from None
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


def make_game_from_cli(game: str, params: list[str] | None):
    from mfax.games import make_game

    try:
        return make_game(game, **parse_assignments(params, "--param"))
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--game/--param") from None


@app.command()
def solve(
    game: str = typer.Option(..., "--game", help="Game name (see `mfax games`)."),
    param: list[str] = typer.Option(None, "--param", help="Game parameter override key=value (repeatable)."),
    iterations: int = typer.Option(200, "--iterations", min=1, help="Fictitious-play iterations."),
    gamma: float = typer.Option(None, "--gamma", help="Discount (default: the game's published one)."),
    num_envs: int = typer.Option(8, "--num-envs", min=1, help="Environments for the uniform policy's score."),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
) -> None:
    """Score the uniform policy, then solve a deterministic game by fictitious play."""
    import jax

    from mfax.evaluation import evaluate_policy
    from mfax.policies import uniform_policy
    from mfax.solvers import solve_tabular

    g = make_game_from_cli(game, param)
    try:
        uni = evaluate_policy(g, uniform_policy(g), jax.random.PRNGKey(seed), num_envs, gamma)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    typer.echo(f"{g.name}: uniform policy exploitability {float(uni.exploitability):.6g} "
               f"(return {float(uni.policy_return):.6g}, best response {float(uni.best_response_return):.6g})")
    if g.has_random_reset:
        typer.echo("tabular solver skipped: it needs a deterministic game "
                   "(--param common_noise=false, and --param bar_location=<int> for beach_bar_1d)")
        return
    try:
        sol = solve_tabular(g, iterations, gamma)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    expl = sol.exploitability
    marks = sorted({0, 1, min(10, iterations), min(100, iterations), iterations})
    typer.echo("fictitious play: " + ", ".join(f"iter {k}: {float(expl[k]):.6g}" for k in marks))
    typer.echo(f"final exploitability {float(expl[-1]):.6g} "
               f"({100 * float(expl[-1]) / max(float(expl[0]), 1e-30):.3g}% of the uniform policy's)")


from mfax import cli_train  # noqa: E402,F401  (registers `train` and `evaluate`)
from mfax import cli_pipeline  # noqa: E402,F401  (registers the pipeline commands)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
