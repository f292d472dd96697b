"""The tree of common-noise histories of a game whose common noise is finite (`Game.noise`).

A *path* fixes the value of every draw of the game's `CommonNoise`; its probability is the
product of the draws' probabilities.  Two paths share a *node* at time ``t`` when they agree
on every draw made by then (``draw.time <= t``): the node is what an agent acting at ``t``
can know.  `mfax.evaluation` rolls every path out as one environment and, for the adapted
best response, averages over each node's paths (`node_mean`) before the max over actions
(docs/algorithms.md#exploitability).
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfax.dynamics import next_mean_field, policy_step, trajectory_of
from mfax.games.base import Game
from mfax.policies import MeanFieldPolicy

#: the default `max_paths` of `mfax.evaluate_policy(noise="exact")`
DEFAULT_MAX_PATHS = 4096


class NoisePaths(NamedTuple):
    """``P`` common-noise paths: the value of every draw, the weight of each path in the
    means, and the node of each path at every time."""

    values: dict  # draw field -> [P] its value on each path
    weight: np.ndarray  # [P] float32, sums to 1
    node: np.ndarray  # [T, P] int32: paths with equal ids know the same draws at t


def _finite_noise(game: Game, what: str, instead: str):
    noise = game.noise
    if not noise.finite:
        raise ValueError(
            f"{what} is not possible for {game.name}: its common noise cannot be enumerated "
            f"({noise.continuous}); {instead}"
        )
    return noise


def _product(draws, values, weights):
    """Every combination of the draws' atoms: ``values[field]`` lists and ``weights``."""
    for combo in itertools.product(*(d.support for d in draws)):
        for d, (atom, _) in zip(draws, combo):
            values[d.field].append(atom)
        weights.append(math.prod(p for _, p in combo))


def _nodes(game: Game, values: dict, env: np.ndarray) -> np.ndarray:
    """``[T, P]`` node ids: paths of one environment that agree on the draws made by t."""
    draws = game.noise.draws
    out = np.zeros((game.horizon, env.shape[0]), np.int32)
    for t in range(game.horizon):
        known = np.stack(
            [env] + [np.asarray(values[d.field], np.float64) for d in draws if d.time <= t], 1
        )
        out[t] = np.unique(known, axis=0, return_inverse=True)[1].reshape(-1)
    return out


def _as_paths(game: Game, values: dict, weights, env) -> NoisePaths:
    dtypes = {d.field: d.dtype for d in game.noise.draws}
    values = {f: np.asarray(v, dtypes[f]) for f, v in values.items()}
    weight = np.asarray(weights, np.float64)
    return NoisePaths(
        values, (weight / weight.sum()).astype(np.float32), _nodes(game, values, np.asarray(env))
    )


def _too_many(game: Game, n: int, max_paths: int, what: str) -> ValueError:
    return ValueError(
        f"{what}: {game.name} has {n} common-noise paths ({game.noise.describe()}), more than "
        f"max_paths = {max_paths}; raise max_paths (time and memory grow with the number of "
        "paths) or use noise='sampled' with best_response='hindsight'"
    )


def enumerate_paths(game: Game, max_paths: int = DEFAULT_MAX_PATHS) -> NoisePaths:
    """Every common-noise path of ``game`` with its probability (one path without noise)."""
    noise = _finite_noise(
        game,
        "noise='exact'",
        "use noise='sampled' (a Monte-Carlo mean "
        "over num_envs sampled paths), or common_noise=False",
    )
    n = noise.num_paths
    if n > max_paths:
        raise _too_many(game, n, max_paths, "noise='exact'")
    values: dict = {d.field: [] for d in noise.draws}
    weights: list = []
    _product(noise.draws, values, weights)
    return _as_paths(game, values, weights, np.zeros(n, np.int64))


def sample_paths(
    game: Game, key: jax.Array, num_envs: int, max_paths: int = DEFAULT_MAX_PATHS
) -> NoisePaths:
    """``num_envs`` environments whose reset draws are sampled from ``key`` exactly as
    `mfax.rollout` samples them, each expanded into every path of its later draws (the
    subtree below it, weighted by its probability / num_envs)."""
    noise = _finite_noise(
        game,
        "best_response='adapted'",
        "the adapted best response needs the tree of noise histories; "
        "mfax.evaluate_policy(noise='sampled', best_response='adapted') brackets it "
        "instead (mfax.noise_bracket)",
    )
    later = noise.later_draws
    n_later = noise.count(later)
    if num_envs * n_later > max_paths:
        raise _too_many(
            game,
            num_envs * n_later,
            max_paths,
            f"best_response='adapted' with num_envs = {num_envs}",
        )
    k_reset = jax.random.split(key, 3)[0]  # as in mfax.dynamics.rollout_fn
    agg, _ = jax.vmap(game.reset)(jax.random.split(k_reset, num_envs))
    sub: dict = {d.field: [] for d in later}
    sub_weights: list = []
    _product(later, sub, sub_weights)
    values = {
        d.field: np.repeat(np.asarray(getattr(agg, d.field)), n_later) for d in noise.reset_draws
    }
    values.update({f: np.tile(np.asarray(v), num_envs) for f, v in sub.items()})
    weights = np.tile(np.asarray(sub_weights, np.float64), num_envs) / num_envs
    return _as_paths(game, values, weights, np.repeat(np.arange(num_envs), n_later))


def node_mean(x: jax.Array, node: jax.Array, weight: jax.Array, axis: int) -> jax.Array:
    """``E[x | node]``: on the paths axis ``axis`` of ``x``, every path gets the
    weight-averaged ``x`` over the paths of its node (``node[P]`` ids in ``0..P-1``)."""
    xe = jnp.moveaxis(x, axis, 0)
    num = weight.shape[0]
    w = weight.reshape((num,) + (1,) * (xe.ndim - 1))
    total = jax.ops.segment_sum(w * xe, node, num_segments=num)
    norm = jax.ops.segment_sum(weight, node, num_segments=num)
    return jnp.moveaxis(total[node] / norm[node].reshape(w.shape), 0, axis)


def paths_rollout_fn(
    game: Game, policy: MeanFieldPolicy, num_paths: int, per_path_params: bool = False
):
    """A pure, jit-able ``(params, values) -> Trajectory``: the push-forward rollout of
    `mfax.dynamics.rollout_fn` with one environment per path, its noise set to the path's
    values (``values``: field -> ``[P]``) instead of sampled.  With ``per_path_params``
    every leaf of ``params`` has a leading ``[P]`` axis: path ``p`` plays ``params[p]``."""
    noise = game.noise
    reset_fields = [d.field for d in noise.reset_draws]
    key0 = jax.random.PRNGKey(0)  # next_aggregate's own draws are overwritten by set_later

    def run(params, values):
        reset = {f: values[f] for f in reset_fields}
        later = {d.field: values[d.field] for d in noise.later_draws}
        lanes = jnp.arange(num_paths)
        agg, mu = jax.vmap(lambda _, v: game.initial_state(v))(lanes, reset)
        carry = jax.vmap(lambda _: policy.initial_carry())(lanes)

        def step(state, _):
            agg, mu, carry = state
            pop = lax.stop_gradient(mu)  # differentiation as in rollout_fn
            obs, raw_obs, pi, carry = policy_step(
                game, policy, params, agg, pop, carry, 0 if per_path_params else None
            )
            agg_next = jax.vmap(lambda a, v: noise.set_later(game.next_aggregate(key0, a), v))(
                agg, later
            )
            mu_next = next_mean_field(game, mu, pi, agg, pop)
            reward = jax.vmap(game.reward)(agg, pop, agg_next, lax.stop_gradient(mu_next))
            return (agg_next, mu_next, carry), (mu, obs, raw_obs, agg.z, agg, pi, reward)

        (_, mu_final, _), rec = lax.scan(step, (agg, mu, carry), None, length=game.horizon)
        return trajectory_of(rec, mu_final)

    return run
