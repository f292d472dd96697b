"""What every trainer's run produces, whatever the algorithm: `Metrics`, `TrainResult`,
`TrainingDiverged`; `finish` (a driven run -> `TrainResult`), `save_result` (agent +
training state) and `resume_training` (continue a saved run of any algorithm).

SPG / RSPG (`mfax.training.spg`), the model-free learners (`mfax.rl`) and the
multi-seed trainer (`mfax.multiseed`) all return these; the algorithm of a
saved run is looked up in `mfax.algorithms`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, NamedTuple, Optional

import jax
import numpy as np

from mfax.training.driver import Progress


class Metrics(NamedTuple):
    """Evaluation metrics; in ``train`` every leaf has a leading axis of evaluations."""

    iteration: jax.Array  # updates applied when evaluated
    exploitability: jax.Array
    policy_return: jax.Array
    best_response_return: jax.Array
    exploitability_undiscounted: jax.Array


class TrainingDiverged(RuntimeError):
    """Raised by `run_training(..., raise_on_nan=True)`; ``.result`` holds the last good agent."""

    def __init__(self, message: str, result: "TrainResult"):
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
    diverged_at: Optional[int] = None  # first non-finite iteration
    message: str = ""
    interrupted: bool = False  # stopped by Ctrl-C / SIGTERM (the driver's interrupt_guard)
    #: the state reached (for `save_result`'s training state and `resume_training`);
    #: when interrupted it may be past the last evaluation
    progress: Optional[Progress] = None

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


def finish(trainer: Any, seed: int, run, compile_seconds: float, *,
           mf_params: Callable = lambda s: s.params, resume: Optional[Progress] = None,
           raise_on_nan: bool = False) -> TrainResult:
    """The `TrainResult` of a driven run (shared by SPG/RSPG and the RL learners)."""
    if run.eval_state is not None:
        params = jax.device_get(mf_params(run.eval_state))
    else:  # resumed and stopped before evaluating: the agent saved with the checkpoint
        params = getattr(resume, "params", None)
    result = TrainResult(trainer, int(seed), params, run.curve, run.losses, compile_seconds,
                         run.train_seconds, run.eval_seconds, run.diverged_at,
                         interrupted=run.interrupted,
                         progress=Progress(run.state, run.curve, run.losses, run.train_seconds,
                                           run.eval_seconds))
    if run.diverged_at is not None:
        if run.nonfinite_eval_at is not None:
            what = (f"the policy after iteration {run.nonfinite_eval_at} evaluates to a "
                    f"non-finite exploitability")
        else:
            what = (f"non-finite loss, gradient, parameters or policy probabilities at "
                    f"iteration {run.diverged_at}")
        result.message = (f"training diverged: {what}; stopped, keeping the last good "
                          f"parameters (after {run.diverged_at} updates); lower lr "
                          f"(now {trainer.config.lr:g}) or max_grad_norm")
        if raise_on_nan:
            raise TrainingDiverged(result.message, result)
    elif run.interrupted:
        last = f"iteration {run.curve[-1]['iteration']}" if run.curve else "none"
        result.message = (f"training interrupted after {result.iterations_run} of "
                          f"{trainer.config.num_iterations} iterations; the agent is the last "
                          f"evaluated one ({last})")
    return result


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
    training = {**config.to_dict(), "num_envs": trainer.num_envs,
                "eval_num_envs": trainer.eval_num_envs, "gamma": trainer.gamma}
    if result.progress is not None:  # first: agent.json, written last, marks a complete save
        save_checkpoint(path, result.progress, config=config, seed=result.seed,
                        status=result.status)
    return save_agent(path, network=trainer.network, params=result.params, game=trainer.game,
                      algorithm=config.algo, seed=result.seed, gamma=trainer.gamma,
                      training=training, metrics=metrics, curve=result.curve,
                      extra={"status": result.status, "message": result.message})


def resume_training(path, *, num_iterations: Optional[int] = None,
                    progress: Optional[bool] = None, stream=None,
                    chunk_iterations: Optional[int] = None,
                    interrupt_after: Optional[int] = None) -> TrainResult:
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
    from mfax.algorithms import get_algorithm
    from mfax.training.checkpoint import load_checkpoint, read_meta

    meta = read_meta(path)
    file = f"{path}/training_state.json"
    if meta["status"] == "diverged":
        raise ValueError(f"{file}: this run diverged; it cannot be resumed (train again with "
                         f"a lower lr)")
    algorithm = get_algorithm(meta["algorithm"])
    config_cls, make = algorithm.config_class, algorithm.make_train
    try:
        config = config_cls(**meta["config"])
        if num_iterations is not None:
            config = config.replace(num_iterations=num_iterations)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{file}: {e}") from None
    if config.num_iterations < meta["iteration"]:
        raise ValueError(f"num_iterations = {config.num_iterations} is not allowed: the run in "
                         f"{path} has already run {meta['iteration']} iterations")
    trainer = make(config)
    checkpoint = load_checkpoint(path, trainer, meta)
    checkpoint.params = load_agent(path).params
    return algorithm.run_training(config, meta["seed"], progress=progress, stream=stream,
                                  resume=checkpoint, chunk_iterations=chunk_iterations,
                                  interrupt_after=interrupt_after)
