"""The `mfax` command line: the one place where the app is built and its commands registered.

Core commands (`games`, `solve`) are defined below; training and evaluation
(`mfax.cli_train`) and the pipeline commands (`mfax.cli_pipeline`) are
groups of their own, merged into the app at the bottom.  Command modules
share helpers through `mfax.cli_common` and never import this module, so
``python -m mfax.cli`` and the ``mfax`` script see the same commands.
Importing this module imports no JAX (commands import what they run).
"""

from __future__ import annotations

import gc
import os
import sys

import typer

from mfax import cli_pipeline, cli_train
from mfax.cli_common import SEED_MAX, make_game_from_cli, parse_assignments

app = typer.Typer(add_completion=False, no_args_is_help=True, help="mfax: mean-field games in JAX.")


@app.callback()
def options(
    threads: int | None = typer.Option(
        None,
        "--threads",
        min=1,
        help="CPU threads for JAX's computations (default: one per core). The pipeline "
        "gives each job its Snakemake threads (docs/PIPELINE.md).",
    ),
) -> None:
    """Options for every command, given before it: ``mfax --threads 1 train ...``."""
    if threads is not None:
        from mfax.xla import limit_cpu_threads

        limit_cpu_threads(threads)


@app.command()
def games() -> None:
    """List the games and their default parameters."""
    from mfax.games import list_games, make_game

    for name in list_games():
        game = make_game(name)
        typer.echo(f"{name}: S={game.num_states} A={game.num_actions} T={game.horizon}")
        for key, value in game.params.to_dict().items():
            typer.echo(f"    {key} = {value}")


@app.command()
def solve(
    game: str = typer.Option(..., "--game", help="Game name (see `mfax games`)."),
    param: list[str] = typer.Option(
        None, "--param", help="Game parameter override key=value (repeatable)."
    ),
    algo: str = typer.Option(
        "fp",
        "--algo",
        help="Tabular algorithm: fp, fp_damped, omd, momd, "
        "boltzmann, boltzmann_damped, bpi, prior_descent (see docs/solvers.md).",
    ),
    setting: list[str] = typer.Option(
        None, "--setting", help="Algorithm setting key=value, e.g. learning_rate=3 (repeatable)."
    ),
    iterations: int = typer.Option(200, "--iterations", min=1, help="Solver iterations."),
    gamma: float = typer.Option(
        None, "--gamma", help="Discount (default: the game's published one)."
    ),
    num_envs: int = typer.Option(
        8, "--num-envs", min=1, help="Environments for the uniform policy's score."
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
    noise: str = typer.Option(
        "none",
        "--noise",
        help="none: the game must be deterministic; exact: solve on the enumerated "
        "common-noise tree (finite noise; exact adapted exploitability).",
    ),
) -> None:
    """Score the uniform policy, then solve a deterministic game with a tabular algorithm
    (or, with --noise exact, a game with finite common noise on its noise tree)."""
    import jax

    from mfax.evaluation import evaluate_policy
    from mfax.policies import uniform_policy
    from mfax.solvers import deterministic_error, get_solver, solve_tabular

    try:
        get_solver(algo)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--algo") from None
    settings = parse_assignments(setting, "--setting")
    g = make_game_from_cli(game, param)
    if noise not in ("none", "exact"):
        raise typer.BadParameter(f"{noise!r}; expected none or exact", param_hint="--noise")
    exact = dict(noise="exact", best_response="adapted") if noise == "exact" else {}
    try:
        uni = evaluate_policy(
            g, uniform_policy(g), jax.random.PRNGKey(seed), num_envs, gamma, **exact
        )
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    typer.echo(
        f"{g.name}: uniform policy exploitability {float(uni.exploitability):.6g} "
        f"(return {float(uni.policy_return):.6g}, best response {float(uni.best_response_return):.6g})"
    )
    if g.has_random_reset and noise == "none":
        typer.echo(f"tabular solver skipped: {deterministic_error(g)}")
        return
    try:
        sol = solve_tabular(g, iterations, algo, gamma=gamma, noise=noise, **settings)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    marks = sorted({0, 1, min(10, iterations), min(100, iterations), iterations})
    swept = sol.exploitability.ndim == 2  # a setting given as a list: one row per value
    for i, expl in enumerate(sol.exploitability if swept else [sol.exploitability]):
        label = algo + (f" (value {i} of the swept settings)" if swept else "")
        typer.echo(f"{label}: " + ", ".join(f"iter {k}: {float(expl[k]):.6g}" for k in marks))
        typer.echo(
            f"final exploitability {float(expl[-1]):.6g} "
            f"({100 * float(expl[-1]) / max(float(expl[0]), 1e-30):.3g}% of the uniform policy's)"
        )


# the command modules' groups, merged into the app: `train`, `evaluate` and the pipeline's
app.add_typer(cli_train.commands)
app.add_typer(cli_pipeline.app)


#: CPython's cyclic garbage collector, for the ``mfax`` process only: tracing and compiling
#: a JAX program allocates Python objects by the million, and at the default threshold (700)
#: the collector ran 500-700 times in a tiny train job, scanning the whole heap (JAX, flax,
#: NumPy) in four or five of them: 0.12-0.55 s of a 1.3-10 s pipeline job. At 20,000 it runs
#: about 20 times, none of them over the whole heap, and peak memory stays the same
#: (docs/PERFORMANCE.md, "The garbage collector in the pipeline's jobs"). Cycles are still
#: collected; only less often.
GC_THRESHOLD = (20_000, 10, 10)


def main() -> None:
    """The ``mfax`` script: run the command, then end the process without the interpreter's
    teardown (freeing JAX's backends, compiled programs and modules: 0.15-0.5 s a process,
    paid by every job of the pipeline).  Every file a command writes is closed before it
    returns (`mfax.io.atomic_write`), so nothing is left to flush but the standard streams.
    An exception that escapes the command exits the usual way, with its traceback."""
    gc.set_threshold(*GC_THRESHOLD)
    try:
        app()
        code = 0
    except SystemExit as stop:
        code = stop.code
    if code is not None and not isinstance(code, int):  # SystemExit("message")
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`mfax ... | head`)
            pass
    os._exit(code or 0)


if __name__ == "__main__":
    main()
