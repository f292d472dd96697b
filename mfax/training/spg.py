"""Structural policy gradients: SPG (feed-forward policy) and RSPG (recurrent policy).

One trainer serves both (``config.algo``; RSPG = the recurrent network).
Every iteration rolls out ``num_envs`` push-forward environments with the
current policy and takes an Adam step on ``-J``, where ``J`` is the expected
return (by default with an annealed entropy bonus, ``ent_coef``: `with_entropy`)
with the population's mean-field path held constant
(`mfax.dynamics.rollout_fn` stops its gradient): the gradient of one agent
improving against the current population.  ``J`` is summed forward along the
agent's own distribution (`mfax.evaluation.discounted_returns`): the value and
gradient of the policy-value recursion, without a second pass over the kernels.
With ``noise: exact`` the batch is every common-noise path of the game instead,
weighted by its probability: ``J`` is then exact and its gradient deterministic
(`_exact_noise`).

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
finite, or whose new parameters give non-finite action probabilities (checked
on the observations of the iteration's first environment: finite but huge
parameters overflow the logits), is not applied; the state records the first
such iteration and every later update is skipped, so the parameters are the
last good ones.  The driver also goes back to the last evaluation whose
metrics were finite if an evaluation is not (`mfax.training.driver.drive`).

Interruption and resumption: see `mfax.training.driver` (Ctrl-C stops after
the compiled call in flight) and `mfax.training.run.resume_training`
(continues a saved run bitwise as if it had never stopped).  The run types
shared by every trainer (`TrainResult`, `Metrics`, `save_result`, ...) are in
`mfax.training.run`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from mfax.dynamics import Trajectory, rollout_fn
from mfax.evaluation import discounted_returns, evaluate_fn, expected_return, exploitability_of
from mfax.games.base import Game
from mfax.networks import NetworkConfig, init_params, network_policy
from mfax.noise_tree import paths_rollout_fn
from mfax.training.config import TrainConfig
from mfax.training.driver import ChunkedTrainer, all_finite, keep_if, policy_probs_finite
from mfax.training.run import Metrics, metrics_of


class TrainState(NamedTuple):
    params: Any
    opt_state: Any
    key: jax.Array
    eval_key: jax.Array  # the same evaluation environments at every evaluation
    step: jax.Array  # int32: iterations run so far (applied or skipped)
    failed_at: jax.Array  # int32: first non-finite iteration, -1 while all is well
    #: float32: the reward scale of the entropy bonus, set by the first iteration
    #: (`reward_scale`); 0 before it and without the bonus
    ent_scale: jax.Array


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
    iteration: Callable[[TrainState, Any], tuple[TrainState, jax.Array]]  # one iteration

    @staticmethod
    def mf_params(state: TrainState) -> Any:
        """The mean-field network's parameters (the agent to save)."""
        return state.params


def _exact_noise(config: TrainConfig, game: Game, policy, gamma: float):
    """``noise: exact``: the loss, batch size and curve evaluation on every common-noise
    path (`mfax.noise_tree`), each weighted by its probability.  The loss is then the exact
    ``-J`` and its gradient has no sampling variance; the rollout key is unused."""
    paths = config.exact_noise_paths(game)
    num_paths = int(paths.weight.shape[0])
    run = paths_rollout_fn(game, policy, num_paths)
    values = {f: jnp.asarray(v) for f, v in paths.values.items()}
    weight = jnp.asarray(paths.weight)

    def rollout(params, key):
        return run(params, values)

    def returns(traj):
        return jnp.sum(weight * discounted_returns(traj, gamma))

    def evaluate(params, key):  # exact hindsight exploitability: an expectation, no key
        return exploitability_of(game, run(params, values), gamma, weight=weight)

    return rollout, returns, weight, num_paths, evaluate


def reward_scale(traj: Trajectory, weight: jax.Array) -> jax.Array:
    """``E|R|``: the mean absolute reward per step of the rollout, over the visited
    states and the actions taken (weighted by ``mu_t pi_t``) and the environments
    (``weight[E]``); the unit of the entropy bonus."""
    per_env = jnp.sum(traj.mu[..., None] * traj.policy * jnp.abs(traj.reward), (0, 2, 3))
    return jnp.sum(weight * per_env) / traj.mu.shape[0]


def with_entropy(traj: Trajectory, beta: jax.Array) -> Trajectory:
    """``traj`` with ``-beta log pi`` added to every reward: its discounted return is
    ``sum_t gamma^t <mu_t, sum_a pi_t R_t + beta H(pi_t)>``, the entropy-regularised one."""
    log_pi = jnp.log(jnp.maximum(traj.policy, jnp.finfo(jnp.float32).tiny))
    return traj._replace(reward=traj.reward - beta * log_pi)


def make_train(
    config: TrainConfig, game: Game | None = None, *, inject_nan_at: int | None = None
) -> Trainer:
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
def _make_train(config: TrainConfig, game: Game, inject_nan_at: int | None) -> Trainer:
    """Cached: the same config gives the same Trainer, so compiled functions are reused."""
    network = config.network(game)
    num_envs, eval_envs = config.resolved_num_envs(), config.resolved_eval_num_envs()
    gamma = config.resolved_gamma(game)
    policy = network_policy(network, game)
    if config.noise == "exact":
        rollout, returns, weight, num_envs, evaluate_exact = _exact_noise(
            config, game, policy, gamma
        )
    else:
        rollout = rollout_fn(game, policy, num_envs)
        evaluate_exact = evaluate_fn(game, policy, eval_envs, gamma)
        weight = jnp.full((num_envs,), 1.0 / num_envs, jnp.float32)

        def returns(traj):
            return expected_return(traj, gamma)

    # the bonus's weight in reward units, annealed linearly to 0 over the run
    ent_schedule = optax.linear_schedule(config.ent_coef, 0.0, config.num_iterations)

    def loss_fn(params, key, step, scale):
        """``-J`` (with the entropy bonus: ``-J_beta``), the observations of the first
        environment ``[T, d]`` and the bonus's reward scale."""
        traj = rollout(params, key)
        if config.ent_coef:
            # the first batch's scale, then fixed: one ent_coef is as strong relative to
            # the rewards in every game (a cond, so later iterations skip its pass over the
            # [T, E, S, A] arrays: macro SPG about 0.95x per iteration)
            scale = lax.cond(
                step == 0, lambda: lax.stop_gradient(reward_scale(traj, weight)), lambda: scale
            )
            traj = with_entropy(traj, ent_schedule(step) * scale)
        return -returns(traj), (traj.obs[:, 0], scale)

    schedule = optax.linear_schedule(
        config.lr, config.lr * config.lr_end_fraction, config.num_iterations
    )
    optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule))

    def init(key: jax.Array) -> TrainState:
        k_init, k_train, k_eval = jax.random.split(key, 3)
        params = init_params(network, game, k_init)
        return TrainState(
            params,
            optimizer.init(params),
            k_train,
            k_eval,
            jnp.zeros((), jnp.int32),
            jnp.full((), -1, jnp.int32),
            jnp.zeros((), jnp.float32),
        )

    def iteration(state: TrainState, _):
        key, k_roll = jax.random.split(state.key)
        (loss, (probe_obs, ent_scale)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, k_roll, state.step, state.ent_scale
        )
        if inject_nan_at is not None:
            grads = jax.tree_util.tree_map(
                lambda g: jnp.where(state.step == inject_nan_at, jnp.nan, g), grads
            )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ok = (state.failed_at < 0) & jnp.isfinite(loss) & all_finite(grads) & all_finite(params)
        ok = ok & policy_probs_finite(policy, params, lax.stop_gradient(probe_obs))
        failed_at = jnp.where((state.failed_at < 0) & ~ok, state.step, state.failed_at)
        new = TrainState(
            keep_if(ok, params, state.params),
            keep_if(ok, opt_state, state.opt_state),
            key,
            state.eval_key,
            state.step + 1,
            failed_at,
            ent_scale,
        )
        return new, loss

    def chunk(state: TrainState):
        return lax.scan(iteration, state, None, length=config.eval_every)

    def evaluate(state: TrainState) -> Metrics:
        return metrics_of(evaluate_exact(state.params, state.eval_key), state)

    return Trainer(
        config, game, network, num_envs, eval_envs, gamma, init, chunk, evaluate, iteration
    )
