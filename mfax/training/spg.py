"""Structural policy gradients: SPG (feed-forward policy) and RSPG (recurrent policy).

One trainer serves both (``config.algo``; RSPG = the recurrent network).
Every iteration rolls out ``num_envs`` push-forward environments with the
current policy and takes an Adam step on ``-J``, where ``J`` is the expected
return by the policy-value recursion with the mean-field path held constant
(`mfax.dynamics.rollout_fn` stops its gradient): the gradient of one agent
improving against the current population.

`make_train(config)` gives pure functions in the style of PureJaxRL:

- ``train(key) -> (TrainState, Metrics)`` runs the whole run as ONE jitted
  computation: an outer ``lax.scan`` over ``num_iterations // eval_every``
  chunks, each an inner scan of ``eval_every`` iterations followed by an
  exact evaluation (`mfax.evaluation.evaluate_fn`); it can be vmapped over
  keys (seeds);
- ``init``, ``chunk`` and ``evaluate``, the same pieces for a driver that
  runs chunk by chunk from Python (`run_training`): wall-clock time at every
  evaluation, a progress bar and a NaN check between chunks.

Divergence: an iteration whose loss, gradient or new parameters are not
finite is not applied; the state records the first such iteration and every
later update is skipped, so the parameters are the last good ones.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from mfax.dynamics import rollout_fn
from mfax.evaluation import evaluate_fn, expected_return
from mfax.games.base import Game
from mfax.networks import NetworkConfig, init_params, network_policy
from mfax.training.config import TrainConfig
from mfax.training.driver import CURVE_COLUMNS, ChunkedTrainer, compiled, drive  # noqa: F401


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    key: jax.Array
    eval_key: jax.Array  # the same evaluation environments at every evaluation
    step: jax.Array  # int32: iterations run so far (applied or skipped)
    failed_at: jax.Array  # int32: first non-finite iteration, -1 while all is well


class Metrics(NamedTuple):
    """Evaluation metrics; in ``train`` every leaf has a leading axis of evaluations."""

    iteration: jax.Array  # updates applied when evaluated
    exploitability: jax.Array
    policy_return: jax.Array
    best_response_return: jax.Array
    exploitability_undiscounted: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer(ChunkedTrainer):
    """The pure pieces of a run; ``trainer(key)`` is the whole run as one computation."""

    config: TrainConfig
    game: Game
    network: NetworkConfig
    num_envs: int
    eval_num_envs: int
    gamma: float
    init: Callable[[jax.Array], TrainState]
    chunk: Callable[[TrainState], tuple[TrainState, jax.Array]]  # -> (state, losses[eval_every])
    evaluate: Callable[[TrainState], Metrics]


def _all_finite(tree: Any) -> jax.Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves]))


def make_train(config: TrainConfig, game: Optional[Game] = None, *,
               inject_nan_at: Optional[int] = None) -> Trainer:
    """Build the training functions for ``config``.

    ``game`` defaults to ``config.make_game()``.  ``inject_nan_at`` is a
    testing hook: the gradient of that iteration is replaced by NaN, to
    exercise the divergence handling.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"make_train expects a TrainConfig, got {type(config).__name__}")
    game = config.make_game() if game is None else game
    return _make_train(config, game, inject_nan_at)


@functools.lru_cache(maxsize=16)
def _make_train(config: TrainConfig, game: Game, inject_nan_at: Optional[int]) -> Trainer:
    """Cached: the same config gives the same Trainer, so compiled functions are reused."""
    network = config.network(game)
    num_envs, eval_envs = config.resolved_num_envs(), config.resolved_eval_num_envs()
    gamma = config.resolved_gamma(game)
    policy = network_policy(network, game)
    run = rollout_fn(game, policy, num_envs)
    evaluate_exact = evaluate_fn(game, policy, eval_envs, gamma)
    schedule = optax.linear_schedule(config.lr, config.lr * config.lr_end_fraction,
                                     config.num_iterations)
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                            optax.adam(schedule))

    def loss_fn(params, key):
        return -expected_return(game, run(params, key), gamma)

    def init(key: jax.Array) -> TrainState:
        k_init, k_train, k_eval = jax.random.split(key, 3)
        params = init_params(network, game, k_init)
        return TrainState(params, optimizer.init(params), k_train, k_eval,
                          jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32))

    def iteration(state: TrainState, _):
        key, k_roll = jax.random.split(state.key)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, k_roll)
        if inject_nan_at is not None:
            grads = jax.tree_util.tree_map(
                lambda g: jnp.where(state.step == inject_nan_at, jnp.nan, g), grads)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = (state.failed_at < 0) & jnp.isfinite(loss) & _all_finite(grads) & _all_finite(params)
        keep = lambda new, old: jax.tree_util.tree_map(  # noqa: E731
            lambda n, o: jnp.where(ok, n, o), new, old)
        failed_at = jnp.where((state.failed_at < 0) & ~ok, state.step, state.failed_at)
        new = TrainState(keep(params, state.params), keep(opt_state, state.opt_state), key,
                         state.eval_key, state.step + 1, failed_at)
        return new, loss

    def chunk(state: TrainState):
        return lax.scan(iteration, state, None, length=config.eval_every)

    def evaluate(state: TrainState) -> Metrics:
        r = evaluate_exact(state.params, state.eval_key)
        applied = jnp.where(state.failed_at >= 0, state.failed_at, state.step)
        return Metrics(applied, r.exploitability, r.policy_return, r.best_response_return,
                       r.exploitability_undiscounted)

    return Trainer(config, game, network, num_envs, eval_envs, gamma, init, chunk, evaluate)


# --- the chunk-by-chunk driver (`mfax.training.driver.drive`) ------------------------------
class TrainingDiverged(RuntimeError):
    """Raised by `run_training(..., raise_on_nan=True)`; ``.result`` holds the last good agent."""

    def __init__(self, message: str, result: "TrainResult"):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class TrainResult:
    trainer: Trainer
    seed: int
    params: Any  # the final (or, after divergence, the last good) parameters
    curve: list[dict[str, float]]  # one row per evaluation, columns CURVE_COLUMNS
    losses: np.ndarray  # [iterations run]
    compile_seconds: float  # AOT compilation of the chunk and the evaluation (0 if cached)
    train_seconds: float  # execution of the training chunks (no evaluation, no compilation)
    eval_seconds: float
    diverged_at: Optional[int] = None  # first non-finite iteration
    message: str = ""

    @property
    def policy(self):
        return self.trainer.policy(self.params)

    @property
    def seconds_per_iteration(self) -> float:
        return self.train_seconds / max(len(self.losses), 1)


def run_training(config: TrainConfig, seed: int = 0, *, game: Optional[Game] = None,
                 progress: Optional[bool] = None, raise_on_nan: bool = False,
                 inject_nan_at: Optional[int] = None, stream=None) -> TrainResult:
    """Train chunk by chunk from Python: timings, progress bar, NaN check per chunk.

    The ``seconds`` of the curve are the cumulative execution time of the
    training iterations at each evaluation (compilation and evaluation time
    are measured separately).  ``progress`` None shows a bar only when the
    stream (stderr) is a terminal.  On divergence the result keeps the last
    good parameters, its ``message`` names the iteration, and
    ``raise_on_nan`` raises `TrainingDiverged` instead of returning.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed = {seed!r} is not allowed; expected an integer")
    trainer = make_train(config, game, inject_nan_at=inject_nan_at)
    state = trainer.init(jax.random.key(int(seed)))

    t0 = time.perf_counter()
    chunk, evaluate = compiled(trainer, state)
    compile_seconds = time.perf_counter() - t0

    run = drive(chunk, evaluate, state, trainer.num_chunks, config.num_iterations,
                progress=progress, stream=stream)
    result = TrainResult(trainer, int(seed), run.state.params, run.curve, run.losses,
                         compile_seconds, run.train_seconds, run.eval_seconds, run.diverged_at)
    if run.diverged_at is not None:
        result.message = (
            f"training diverged: non-finite loss, gradient or parameters at iteration "
            f"{run.diverged_at} (loss {float(run.losses[-1])!r}); stopped, keeping the last "
            f"good parameters (after {run.diverged_at} updates)")
        if raise_on_nan:
            raise TrainingDiverged(result.message, result)
    return result


def save_result(result: TrainResult, path) -> "Path":  # noqa: F821
    """Save a trained (or last good, after divergence) agent with its curve (`mfax.agents`)."""
    from mfax.agents import save_agent

    trainer = result.trainer
    config = trainer.config
    final = result.curve[-1] if result.curve else {}
    metrics = {
        "exploitability": final.get("exploitability"),
        "policy_return": final.get("policy_return"),
        "best_response_return": final.get("best_response_return"),
        "iterations": final.get("iteration"),
        "compile_seconds": result.compile_seconds,
        "train_seconds": result.train_seconds,
        "eval_seconds": result.eval_seconds,
        "seconds_per_iteration": result.seconds_per_iteration,
        "diverged_at": result.diverged_at,
    }
    training = {**config.to_dict(), "num_envs": trainer.num_envs,
                "eval_num_envs": trainer.eval_num_envs, "gamma": trainer.gamma}
    return save_agent(path, network=trainer.network, params=result.params, game=trainer.game,
                      algorithm=config.algo, seed=result.seed, gamma=trainer.gamma,
                      training=training, metrics=metrics, curve=result.curve,
                      extra={"status": "diverged" if result.diverged_at is not None else "ok",
                             "message": result.message})
