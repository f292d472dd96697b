"""`mfax train` and `mfax evaluate` (the group `commands`, merged into the app by `mfax.cli`).

    mfax train --game G --algo spg|rspg|ippo|rippo|m_omd [--config file.yaml] [--set key=value ...]
               [--param game_key=value ...] --out DIR [--seed N]
    mfax train --resume DIR [--set num_iterations=N] [--out DIR2]
    mfax evaluate --agent DIR [--num-envs E] [--seed K] [--json FILE]
                  [--noise sampled|exact] [--best-response hindsight|adapted]

The config file holds training keys at the top level and an optional
``game:`` mapping of game parameters; ``--set`` takes the same keys (and
``game.<param>=value``), ``--param`` game parameters.  Precedence: file <
--set < --param.  Unknown keys are errors listing the allowed keys.

Ctrl-C stops training within about a second (after the iteration in flight),
saves the last evaluated agent with ``"status": "interrupted"`` and the
training state, and exits with status 130; ``--resume DIR`` continues it
(see docs/ERRORS.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mfax.cli_common import SEED_MAX, command_group, parse_assignments

commands = command_group()


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"Error: {message}", err=True)
    return typer.Exit(code)


def _read_yaml(path: Path) -> dict:
    from mfax.io import read_yaml

    try:
        data = read_yaml(path, "config file")
    except ValueError as e:
        raise _fail(str(e)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _fail(
            f"config file {str(path)!r}: expected a mapping of keys to values, "
            f"got {type(data).__name__}"
        )
    return data


def _check_outputs(*locations) -> None:
    """Fail now (before any work) if an output ``(path, kind, option)`` cannot be written."""
    from mfax.outputs import check_output_locations

    try:
        check_output_locations(*locations)
    except ValueError as e:
        raise _fail(str(e)) from None


@commands.command()
def train(
    game: str | None = typer.Option(None, "--game", help="game name (see `mfax games`)"),
    algo: str | None = typer.Option(None, "--algo", help="spg, rspg, ippo, rippo or m_omd"),
    config: Path | None = typer.Option(
        None, "--config", help="YAML: training keys and an optional game: mapping"
    ),
    set_: list[str] | None = typer.Option(
        None, "--set", help="training key=value (or game.<param>=value)"
    ),
    param: list[str] | None = typer.Option(None, "--param", help="game parameter key=value"),
    out: Path | None = typer.Option(
        None, "--out", help="agent directory to write (with --resume: DIR)"
    ),
    seed: int | None = typer.Option(None, "--seed", min=0, max=SEED_MAX, help="seed (default 0)"),
    progress: bool | None = typer.Option(
        None, "--progress/--no-progress", help="progress bar (default: only on a terminal)"
    ),
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="continue the interrupted (or finished) run saved in this "
        "agent directory; only --set num_iterations=N may change",
    ),
) -> None:
    """Train an agent (SPG, RSPG, IPPO, RIPPO or M-OMD); save weights, agent.json, curve.csv under --out."""
    if resume is not None:
        return _resume(resume, game, algo, config, set_, param, out, seed, progress)
    missing = [
        flag for flag, v in (("--game", game), ("--algo", algo), ("--out", out)) if v is None
    ]
    if missing:
        raise _fail(f"missing option {', '.join(missing)} (or --resume DIR to continue a run)")
    seed = 0 if seed is None else seed
    from mfax.algorithms import get_algorithm, list_algorithms
    from mfax.games import check_game_size
    from mfax.training.config import merge_mappings

    if algo not in list_algorithms():
        raise _fail(
            f"--algo = {algo!r} is not allowed; expected one of {', '.join(list_algorithms())}"
        )
    algorithm = get_algorithm(algo)  # every family: the same config layer and agent format

    file_values = _read_yaml(config) if config is not None else {}
    overrides = parse_assignments(set_, "--set")
    game_params = parse_assignments(param, "--param")
    merged = merge_mappings(file_values, overrides, {"game": game_params} if game_params else None)
    source = f"config ({config})" if config is not None else "config"
    try:
        cfg = algorithm.config_class.from_mapping(merged, game=game, algo=algo, source=source)
        check_game_size(
            cfg.make_game(),
            max(cfg.resolved_num_envs(), cfg.resolved_eval_num_envs()),
            "num_envs / eval_num_envs",
        )
    except ValueError as e:
        raise _fail(str(e)) from None
    _check_outputs((out, "agent", "--out"))

    result = algorithm.run_training(cfg, seed, progress=progress)
    _report(result, out)


def _report(result, out: Path) -> None:
    """Save the result, print one summary line; exit 1 (diverged) or 130 (interrupted)."""
    from mfax.training.interrupt import INTERRUPTED_EXIT_CODE
    from mfax.training.run import save_result

    cfg = result.trainer.config
    if result.interrupted and not result.curve:
        raise _fail(
            "training interrupted before the first evaluation; nothing was saved",
            code=INTERRUPTED_EXIT_CODE,
        )
    save_result(result, out)
    final = result.curve[-1]
    typer.echo(
        f"{cfg.algo} on {cfg.game}: {final['iteration']} iterations, exploitability "
        f"{result.curve[0]['exploitability']:.6g} -> {final['exploitability']:.6g}, "
        f"policy return {final['policy_return']:.6g}; compile {result.compile_seconds:.1f}s, "
        f"train {result.train_seconds:.1f}s ({1e3 * result.seconds_per_iteration:.2f} ms/iter); "
        f"saved to {out}"
    )
    if result.diverged_at is not None:
        raise _fail(f"{result.message}; the last good agent was saved to {out}", code=1)
    if result.interrupted:
        raise _fail(
            f"{result.message}; saved to {out} (agent.json status: interrupted) with "
            f"the training state; continue with: mfax train --resume {out}",
            code=INTERRUPTED_EXIT_CODE,
        )


def _resume(path: Path, game, algo, config, set_, param, out, seed, progress) -> None:
    """``mfax train --resume DIR``: continue the run saved in DIR (`resume_training`)."""
    from mfax.games import canonical_name
    from mfax.training.checkpoint import read_meta
    from mfax.training.run import resume_training

    try:
        meta = read_meta(path)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(str(e)) from None
    saved = meta["config"]
    try:
        if game is not None and canonical_name(game) != saved.get("game"):
            raise _fail(
                f"--game {game!r} disagrees with the run in {path} "
                f"({saved.get('game')!r}); omit --game with --resume"
            )
    except ValueError as e:
        raise _fail(str(e)) from None
    if algo is not None and algo != meta["algorithm"]:
        raise _fail(
            f"--algo {algo!r} disagrees with the run in {path} "
            f"({meta['algorithm']!r}); omit --algo with --resume"
        )
    if seed is not None and seed != meta["seed"]:
        raise _fail(f"--seed {seed} disagrees with the run in {path} (seed {meta['seed']})")
    if config is not None or param:
        raise _fail(
            "--resume continues the saved config; --config and --param cannot change "
            "it (only --set num_iterations=N)"
        )
    overrides = parse_assignments(set_, "--set")
    other = sorted(set(overrides) - {"num_iterations"})
    if other:
        raise _fail(
            f"--resume continues the saved config; --set {other[0]} cannot change it "
            "(only num_iterations may: train further)"
        )
    num_iterations = overrides.get("num_iterations")
    target = saved.get("num_iterations") if num_iterations is None else num_iterations
    if meta["status"] == "ok" and target == meta["iteration"]:
        typer.echo(
            f"the run in {path} has finished ({meta['iteration']} iterations); nothing "
            f"to resume (train further with --set num_iterations=N)"
        )
        return
    _check_outputs((path if out is None else out, "agent", "--out"))
    try:
        result = resume_training(path, num_iterations=num_iterations, progress=progress)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(str(e)) from None
    _report(result, path if out is None else out)


_KINDS = {
    ("sampled", "hindsight"): "a mean over sampled common-noise paths of a best "
    "response that knows each whole path (an upper bound "
    "with common noise)",
    ("sampled", "adapted"): "a mean over sampled reset draws of the best response that "
    "knows only the noise drawn so far",
    ("exact", "hindsight"): "the exact expectation over the noise of a best response "
    "that knows the whole path (an upper bound)",
    ("exact", "adapted"): "the exact expectation over the noise of the best response "
    "that knows only the noise drawn so far",
}


@commands.command()
def evaluate(
    agent: Path = typer.Option(..., "--agent", help="agent directory written by `mfax train`"),
    num_envs: int | None = typer.Option(
        None, "--num-envs", help="environments (default: the training setting)"
    ),
    seed: int = typer.Option(0, "--seed", min=0, max=SEED_MAX),
    json_path: Path | None = typer.Option(None, "--json", help="write the metrics as JSON"),
    noise: str | None = typer.Option(
        None,
        "--noise",
        help="sampled (default: --num-envs paths drawn from --seed) or exact "
        "(every path of a finite common noise, weighted by its probability)",
    ),
    best_response: str | None = typer.Option(
        None,
        "--best-response",
        help="hindsight (default: knows the whole noise path, an "
        "upper bound) or adapted (knows the noise drawn so far; shown beside the hindsight "
        "value; for continuous noise, macro, a lower and upper bound with standard errors)",
    ),
) -> None:
    """Evaluate a saved agent: exploitability and returns on the push-forward game."""
    import jax

    from mfax.agents import load_agent
    from mfax.evaluation import BEST_RESPONSES, NOISE_MODES, NonFiniteResultError, evaluate_policy
    from mfax.games import check_game_size
    from mfax.io import atomic_write

    if num_envs is not None and num_envs < 1:
        raise _fail(f"--num-envs = {num_envs} is not allowed; expected an integer >= 1")
    for flag, value, allowed in (
        ("--noise", noise, NOISE_MODES),
        ("--best-response", best_response, BEST_RESPONSES),
    ):
        if value is not None and value not in allowed:
            raise _fail(
                f"{flag} = {value!r} is not allowed; expected "
                + " or ".join(f"{k} ({v})" for k, v in allowed.items())
            )
    asked = noise is not None or best_response is not None  # else: the historical output
    noise, best_response = noise or "sampled", best_response or "hindsight"
    _check_outputs((json_path, "file", "--json"))
    try:
        loaded = load_agent(agent)
        if num_envs is None:
            num_envs = loaded.eval_num_envs
        check_game_size(loaded.game, num_envs, "--num-envs")

        def run(kind):
            return evaluate_policy(
                loaded.game,
                loaded,
                jax.random.key(seed),
                num_envs=int(num_envs),
                gamma=loaded.gamma,
                noise=noise,
                best_response=kind,
            )

        r = run(best_response)
        # the adapted value with the hindsight one beside it (a bracket carries its own)
        beside = run("hindsight") if r.best_response == "adapted" else None
    except NonFiniteResultError as e:
        raise _fail(f"{agent}: {e}", code=1) from None
    except (FileNotFoundError, ValueError) as e:
        raise _fail(str(e)) from None
    metrics = {
        "game": loaded.game.name,
        "algorithm": loaded.algorithm,
        "agent": str(agent),
        "num_envs": int(num_envs),
        "seed": seed,
        "gamma": loaded.gamma,
        "noise": r.noise,
        "best_response": r.best_response,
        "exploitability": float(r.exploitability),
        "policy_return": float(r.policy_return),
        "best_response_return": float(r.best_response_return),
        "exploitability_undiscounted": float(r.exploitability_undiscounted),
        "policy_return_undiscounted": float(r.policy_return_undiscounted),
        "best_response_return_undiscounted": float(r.best_response_return_undiscounted),
    }
    kinds = {}  # exploitability_<noise>_<best response>: named by kind, for the flags only
    if asked:
        metrics["num_paths"] = int(r.env_weight.shape[0])
        kinds[f"exploitability_{r.noise}_{r.best_response}"] = float(r.exploitability)
        if beside is not None:
            kinds[f"exploitability_{noise}_hindsight"] = float(beside.exploitability)
        metrics.update(kinds)
        if r.exploitability_lower is not None:
            for name in ("lower", "lower_se", "upper", "upper_se"):
                metrics[f"exploitability_{name}"] = float(getattr(r, f"exploitability_{name}"))
    typer.echo(
        f"kind: {r.noise} noise, {r.best_response} best response: "
        f"{_KINDS[r.noise, r.best_response]}"
    )
    for key in ("exploitability", "policy_return", "best_response_return"):
        typer.echo(f"{key}: {metrics[key]:.6g}")
    if r.exploitability_lower is not None:
        typer.echo(
            "the exploitability of the best response that knows only the noise drawn "
            f"so far lies in [{metrics['exploitability_lower']:.6g} +- "
            f"{metrics['exploitability_lower_se']:.3g}, "
            f"{metrics['exploitability_upper']:.6g} +- "
            f"{metrics['exploitability_upper_se']:.3g}] (Monte-Carlo standard errors)"
        )
    for key, value in kinds.items():
        typer.echo(f"{key}: {value:.6g}")
    if json_path is not None:
        atomic_write(json_path, json.dumps(metrics, indent=2) + "\n")


__all__ = ["train", "evaluate"]
