"""The one run path of every algorithm: `run_training` (config, seed -> `TrainResult`),
the types it returns (`Metrics`, `TrainResult`, `TrainingDiverged`), the messages of
a diverged or interrupted run, `save_result` (agent + training state) and
`resume_training` (continue a saved run of any algorithm).

The algorithm's trainer comes from `mfax.algorithms` (SPG / RSPG from
`mfax.training.spg`, the model-free learners from `mfax.rl.train`); the
multi-seed trainer (`mfax.multiseed`) drives the same pieces vmapped and
words its results with the same messages.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from mfax.algorithms import get_algorithm
from mfax.sharding import replicate
from mfax.training.driver import Progress, compiled, drive
from mfax.training.interrupt import interrupt_guard


class Metrics(NamedTuple):
    """Evaluation metrics; in ``train`` every leaf has a leading axis of evaluations."""

    iteration: jax.Array  # updates applied when evaluated
    exploitability: jax.Array
    policy_return: jax.Array
    best_response_return: jax.Array
    exploitability_undiscounted: jax.Array


def metrics_of(result: Any, state: Any) -> Metrics:
    """The curve row of ``result`` (an `mfax.evaluation.EvalResult`), the evaluation of a
    trainer's ``state``: counted at the last applied update (``failed_at`` once diverged)."""
    applied = jax.numpy.where(state.failed_at >= 0, state.failed_at, state.step)
    return Metrics(
        applied,
        result.exploitability,
        result.policy_return,
        result.best_response_return,
        result.exploitability_undiscounted,
    )


class TrainingDiverged(RuntimeError):
    """Raised by `run_training(..., raise_on_nan=True)`; ``.result`` holds the last good agent."""

    def __init__(self, message: str, result: TrainResult):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class TrainResult:
    trainer: Any  # mfax.training.Trainer or mfax.rl.RLTrainer
    seed: int
    params: Any  # the agent: parameters of the last evaluation (after divergence: last good)
    curve: list[dict[str, float]]  # one row per evaluation, columns CURVE_COLUMNS
    losses: np.ndarray  # [iterations run]
    compile_seconds: float  # AOT compilation of the chunk and the evaluation (0 if cached)
    train_seconds: float  # execution of the training chunks (no evaluation, no compilation)
    eval_seconds: float
    diverged_at: int | None = None  # first non-finite iteration
    message: str = ""
    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM (the driver's interrupt_guard)
    #: the state reached (for `save_result`'s training state and `resume_training`);
    #: when interrupted it may be past the last evaluation
    progress: Progress | None = None

    @property
    def policy(self):
        return self.trainer.policy(self.params)

    @property
    def seconds_per_iteration(self) -> float:
        return self.train_seconds / max(len(self.losses), 1)

    @property
    def status(self) -> str:
        """``ok`` (finished), ``diverged`` or ``interrupted``: agent.json's ``status``."""
        if self.diverged_at is not None:
            return "diverged"
        return "interrupted" if self.interrupted else "ok"

    @property
    def iterations_run(self) -> int:
        if self.progress is None:
            return len(self.losses)
        return int(np.asarray(self.progress.state.step))


def divergence_message(diverged_at: int, lr: float, nonfinite_eval_at: int | None = None) -> str:
    """Why a run stopped early and what to change (every trainer, one seed or several)."""
    if nonfinite_eval_at is not None:
        what = (
            f"the policy after iteration {nonfinite_eval_at} evaluates to a "
            f"non-finite exploitability"
        )
    else:
        what = (
            f"non-finite loss, gradient, parameters or policy probabilities at "
            f"iteration {diverged_at}"
        )
    return (
        f"training diverged: {what}; stopped, keeping the last good parameters "
        f"(after {diverged_at} updates); lower lr (now {lr:g}) or max_grad_norm"
    )


def interrupt_message(iterations_run: int, num_iterations: int, curve: list) -> str:
    last = f"iteration {curve[-1]['iteration']}" if curve else "none"
    return (
        f"training interrupted after {iterations_run} of {num_iterations} iterations; "
        f"the agent is the last evaluated one ({last})"
    )


def finish(
    trainer: Any,
    seed: int,
    run,
    compile_seconds: float,
    *,
    mf_params: Callable,
    resume: Progress | None = None,
    raise_on_nan: bool = False,
) -> TrainResult:
    """The `TrainResult` of a driven run of one seed."""
    if run.eval_state is not None:
        params = jax.device_get(mf_params(run.eval_state))
    else:  # resumed and stopped before evaluating: the agent saved with the checkpoint
        params = getattr(resume, "params", None)
    result = TrainResult(
        trainer,
        int(seed),
        params,
        run.curve,
        run.losses,
        compile_seconds,
        run.train_seconds,
        run.eval_seconds,
        run.diverged_at,
        interrupted=run.interrupted,
        progress=Progress(run.state, run.curve, run.losses, run.train_seconds, run.eval_seconds),
    )
    if run.diverged_at is not None:
        result.message = divergence_message(
            run.diverged_at, trainer.config.lr, run.nonfinite_eval_at
        )
        if raise_on_nan:
            raise TrainingDiverged(result.message, result)
    elif run.interrupted:
        result.message = interrupt_message(
            result.iterations_run, trainer.config.num_iterations, run.curve
        )
    return result


@functools.lru_cache(maxsize=16)
def _jitted_init(trainer: Any) -> Callable:
    return jax.jit(
        trainer.init, compiler_options=trainer.config.compiler_options(old_emitters=True)
    )


def run_training(
    config: Any,
    seed: int = 0,
    *,
    game: Any = None,
    progress: bool | None = None,
    raise_on_nan: bool = False,
    stream=None,
    resume: Progress | None = None,
    chunk_iterations: int | None = None,
    interrupt_after: int | None = None,
    **trainer_options: Any,
) -> TrainResult:
    """Train any algorithm (``config.algo``, a `TrainConfig` or an `mfax.rl.RLConfig`)
    chunk by chunk from Python: timings, progress bar, divergence check, Ctrl-C.

    The ``seconds`` of the curve are the cumulative execution time of the
    training iterations at each evaluation (compilation and evaluation time
    are measured separately).  ``progress`` None shows a bar only when the
    stream (stderr) is a terminal.  On divergence the result keeps the last
    good parameters, its ``message`` names the iteration, and
    ``raise_on_nan`` raises `TrainingDiverged` instead of returning.

    Ctrl-C (SIGINT) or SIGTERM stops the run after the compiled call in flight
    (about `mfax.training.driver.CHUNK_SECONDS`, at least one iteration): the
    result has ``interrupted=True``, the last evaluated agent and the state
    reached (``progress``); `save_result` then `resume_training` continue it.
    ``resume`` (a `mfax.training.checkpoint.Checkpoint`) continues a saved run;
    ``chunk_iterations`` fixes the iterations per compiled call and
    ``interrupt_after`` (testing hook) acts as if Ctrl-C came after that many
    calls.  Neither changes the numbers: a resumed run is bitwise the run that
    was never interrupted.  ``trainer_options`` go to the algorithm's
    ``make_train`` (SPG: ``inject_nan_at``, a testing hook).
    """
    check_seed(seed)
    trainer = get_algorithm(config.algo).make_train(config, game, **trainer_options)
    with interrupt_guard(stream, after_calls=interrupt_after) as flag:
        t0 = time.perf_counter()
        state = replicate(
            _jitted_init(trainer)(jax.random.key(int(seed))) if resume is None else resume.state
        )  # several devices: the state on all of them
        advance, evaluate, mf_params = compiled(
            trainer, state, ("advance", "evaluate", "mf_params")
        )
        compile_seconds = time.perf_counter() - t0
        run = drive(
            advance,
            evaluate,
            state,
            config.num_iterations,
            config.eval_every,
            progress=progress,
            stream=stream,
            resume=resume,
            chunk_iterations=chunk_iterations,
            interrupt=flag,
        )
    return finish(
        trainer,
        seed,
        run,
        compile_seconds,
        mf_params=mf_params,
        resume=resume,
        raise_on_nan=raise_on_nan,
    )


def check_seed(seed: Any) -> None:
    """A seed must be an integer (not a bool)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed = {seed!r} is not allowed; expected an integer")


def save_result(result: TrainResult, path) -> Path:
    """Save a trained (or last good, or last evaluated) agent with its curve (`mfax.agents`),
    and the training state for `resume_training` (`mfax.training.checkpoint`).

    agent.json's ``status`` is ``ok``, ``diverged`` or ``interrupted``.
    """
    from mfax.agents import save_agent
    from mfax.training.checkpoint import save_checkpoint

    if result.params is None or not result.curve:
        raise ValueError("nothing to save: the run was stopped before its first evaluation")
    trainer = result.trainer
    config = trainer.config
    final = result.curve[-1] if result.curve else {}
    metrics = {
        "exploitability": final.get("exploitability"),
        "policy_return": final.get("policy_return"),
        "best_response_return": final.get("best_response_return"),
        "iterations": final.get("iteration"),
        "iterations_run": result.iterations_run,
        "compile_seconds": result.compile_seconds,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "seconds_per_iteration": result.seconds_per_iteration,
        "diverged_at": result.diverged_at,
    }
    training = {
        **config.to_dict(),
        "num_envs": trainer.num_envs,
        "eval_num_envs": trainer.eval_num_envs,
        "gamma": trainer.gamma,
    }
    if result.progress is not None:  # first: agent.json, written last, marks a complete save
        save_checkpoint(
            path, result.progress, config=config, seed=result.seed, status=result.status
        )
    return save_agent(
        path,
        network=trainer.network,
        params=result.params,
        game=trainer.game,
        algorithm=config.algo,
        seed=result.seed,
        gamma=trainer.gamma,
        training=training,
        metrics=metrics,
        curve=result.curve,
        extra={"status": result.status, "message": result.message},
    )


def resume_training(
    path,
    *,
    num_iterations: int | None = None,
    progress: bool | None = None,
    stream=None,
    chunk_iterations: int | None = None,
    interrupt_after: int | None = None,
) -> TrainResult:
    """Continue the run saved in the agent directory ``path`` (any algorithm) from its
    training state: parameters, optimiser state, iteration, keys, curve and losses.

    With the same ``num_iterations`` the result is bitwise that of the run never
    interrupted.  A larger ``num_iterations`` (a finished or an interrupted run) trains
    on: every schedule (learning rate, M-OMD's epsilon) is then the one of a run of
    ``num_iterations`` from the iteration reached, so the result differs from a fresh
    run of that length.  Nothing else of the config can change.  A diverged run cannot
    be resumed.  Save the result with `save_result` (into ``path`` again, as the CLI does).
    """
    from mfax.agents import load_agent
    from mfax.training.checkpoint import load_checkpoint, read_meta

    meta = read_meta(path)
    file = f"{path}/training_state.json"
    if meta["status"] == "diverged":
        raise ValueError(
            f"{file}: this run diverged; it cannot be resumed (train again with a lower lr)"
        )
    algorithm = get_algorithm(meta["algorithm"])
    config_cls, make = algorithm.config_class, algorithm.make_train
    try:
        config = config_cls(**meta["config"])
        if num_iterations is not None:
            config = config.replace(num_iterations=num_iterations)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{file}: {e}") from None
    if config.num_iterations < meta["iteration"]:
        raise ValueError(
            f"num_iterations = {config.num_iterations} is not allowed: the run in "
            f"{path} has already run {meta['iteration']} iterations"
        )
    trainer = make(config)
    checkpoint = load_checkpoint(path, trainer, meta)
    checkpoint.params = load_agent(path).params
    return run_training(
        config,
        meta["seed"],
        progress=progress,
        stream=stream,
        resume=checkpoint,
        chunk_iterations=chunk_iterations,
        interrupt_after=interrupt_after,
    )
