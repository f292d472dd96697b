"""Policy value, best response and exploitability by backward induction.

Definitions follow ALGORITHMS.md.  With common noise, the best response is
computed on each sampled path separately, so it knows that path in
hindsight: the reported exploitability is then an upper bound on the true
one (the same convention as the published results).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mfax.dynamics import Trajectory, _check_sizes, expectation, rollout_fn
from mfax.games.base import Game
from mfax.policies import MeanFieldPolicy, as_policy

class EvalResult(NamedTuple):
    """Exploitability of a policy on ``E`` environments (scalars are means over them)."""

    exploitability: jax.Array
    policy_return: jax.Array
    best_response_return: jax.Array
    exploitability_undiscounted: jax.Array
    policy_return_undiscounted: jax.Array
    best_response_return_undiscounted: jax.Array
    per_env_exploitability: jax.Array  # [E]
    per_state_exploitability: jax.Array  # [E, S], V*_0 - V_0 (discounted)
    policy_value: jax.Array  # [T, E, S] V_t (discounted)
    best_response_value: jax.Array  # [T, E, S] V*_t (discounted)
    best_response_actions: jax.Array  # [T, E, S] argmax_a Q*_t (discounted)
    trajectory: Trajectory


def _backward(game: Game, traj: Trajectory, update, init):
    """Reverse scan over t; kernels are recomputed from the stored (frozen) path."""

    def body(carry, xs):
        agg, mu, reward, probs = xs
        idx, prob = jax.vmap(game.kernel)(agg, lax.stop_gradient(mu))
        return update(carry, idx, prob, reward, probs)

    return lax.scan(body, init, (traj.aggregate, traj.mu, traj.reward, traj.policy), reverse=True)


def policy_value(game: Game, traj: Trajectory, gamma: float) -> jax.Array:
    """``V_0[E, S]`` of the recorded policy on the recorded path (differentiable in the policy)."""

    def update(v, idx, prob, reward, probs):
        v = jnp.sum(probs * (reward + gamma * expectation(v, idx, prob)), -1)
        return v, None

    v0, _ = _backward(game, traj, update, jnp.zeros_like(traj.mu_final))
    return v0


def expected_return(game: Game, traj: Trajectory, gamma: float) -> jax.Array:
    """``J``: the mean over environments of ``sum_s mu_0[s] V_0[s]``."""
    return jnp.mean(jnp.sum(traj.mu0 * policy_value(game, traj, gamma), -1))


def exploitability_of(game: Game, traj: Trajectory, gamma: float) -> EvalResult:
    """Policy value, best response and exploitability on a rollout.

    Besides ``V`` and ``V*`` the recursion carries the gap ``D = V* - V``
    directly, ``D_t = sum_a pi (V*_t - Q*_t[a] + gamma E[D_{t+1}])``, whose
    every term is non-negative: exploitability is >= 0 in floating point too,
    with no cancellation between two large returns.
    """
    gammas = jnp.asarray([gamma, 1.0], jnp.float32)[:, None, None, None]

    def update(carry, idx, prob, reward, probs):
        v, v_star, gap = carry  # each [gamma, E, S]
        ev, ev_star, egap = expectation(jnp.stack(carry), idx, prob)
        q = reward + gammas * ev
        q_star = reward + gammas * ev_star
        best = jnp.max(q_star, -1)
        gap = jnp.sum(probs * (best[..., None] - q_star + gammas * egap), -1)
        v = jnp.sum(probs * q, -1)
        return (v, best, gap), (v[0], best[0], jnp.argmax(q_star[0], -1))

    zeros = jnp.zeros((2,) + traj.mu_final.shape, jnp.float32)
    (v0, v_star0, gap0), (v_t, v_star_t, actions) = _backward(
        game, traj, update, (zeros, zeros, zeros))
    weight = lambda x: jnp.mean(jnp.sum(traj.mu0 * x, -1), -1)  # noqa: E731  over [G, E, S]
    expl, ret, br = weight(gap0), weight(v0), weight(v_star0)
    return EvalResult(
        exploitability=expl[0], policy_return=ret[0], best_response_return=br[0],
        exploitability_undiscounted=expl[1], policy_return_undiscounted=ret[1],
        best_response_return_undiscounted=br[1],
        per_env_exploitability=jnp.sum(traj.mu0 * gap0[0], -1),
        per_state_exploitability=gap0[0], policy_value=v_t, best_response_value=v_star_t,
        best_response_actions=actions.astype(jnp.int32), trajectory=traj)


def evaluate_fn(game: Game, policy: MeanFieldPolicy, num_envs: int, gamma: float):
    """A pure, jit-able ``(params, key) -> EvalResult``: rollout then backward induction."""
    run = rollout_fn(game, policy, num_envs)

    def evaluate(params, key):
        return exploitability_of(game, run(params, key), gamma)

    return evaluate


@functools.lru_cache(maxsize=64)
def _jitted_evaluate(game, apply, initial_carry, num_envs, gamma):
    return jax.jit(evaluate_fn(game, MeanFieldPolicy(apply, None, initial_carry), num_envs, gamma))


def evaluate_policy(game: Game, policy: Any, key: jax.Array, num_envs: int = 1,
                    gamma: float | None = None) -> EvalResult:
    """Exploitability of ``policy`` on ``num_envs`` push-forward environments.

    ``gamma`` defaults to the game's published discount (0.99, macro 0.95).
    """
    _check_sizes(num_envs)
    gamma = game.default_discount if gamma is None else float(gamma)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma = {gamma!r} is not allowed; expected a number in (0, 1]")
    pol = as_policy(policy, game)
    return _jitted_evaluate(game, pol.apply, pol.initial_carry, num_envs, gamma)(pol.params, key)
