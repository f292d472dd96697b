"""Policy value, best response and exploitability by backward induction.

Definitions follow docs/algorithms.md#exploitability.  With common noise, the best response is
computed on each sampled path separately, so it knows that path in
hindsight: the reported exploitability is then an upper bound on the true
one (the same convention as the published results).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfax.dynamics import Trajectory, _check_sizes, expectation, rollout_fn
from mfax.games import check_game_size
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


class NonFiniteResultError(ValueError):
    """An evaluation whose policy probabilities or results are NaN or infinite."""


def check_finite_result(result: EvalResult, what: str = "policy") -> EvalResult:
    """Raise `NonFiniteResultError` if the policy's action probabilities or the scores of
    ``result`` are not finite (e.g. an agent from a diverged run); return ``result``."""
    probs = result.trajectory.policy
    if not bool(jnp.all(jnp.isfinite(probs))):
        bad = ~np.isfinite(np.asarray(probs)).all(-1)  # [T, E, S]
        t, e, s = (int(i[0]) for i in np.nonzero(bad))
        raise NonFiniteResultError(
            f"{what}: the action probabilities are not finite (NaN or inf) in "
            f"{int(bad.sum())} of {bad.size} (time, environment, state) rows, first at t = {t}, "
            f"state {s}; the policy is unusable (typically a diverged training run: retrain "
            "with a smaller learning rate)")
    for name in ("exploitability", "policy_return", "best_response_return",
                 "exploitability_undiscounted", "policy_return_undiscounted",
                 "best_response_return_undiscounted"):
        value = float(np.asarray(getattr(result, name)))
        if not math.isfinite(value):
            raise NonFiniteResultError(
                f"{what}: {name} = {value!r} is not finite although the action probabilities "
                "are; the rewards overflowed (game parameters too extreme?)")
    return result


def evaluate_policy(game: Game, policy: Any, key: jax.Array, num_envs: int = 1,
                    gamma: float | None = None, check_finite: bool = True) -> EvalResult:
    """Exploitability of ``policy`` on ``num_envs`` push-forward environments.

    ``gamma`` defaults to the game's published discount (0.99, macro 0.95).
    With ``check_finite`` (the default), a policy whose action probabilities
    are NaN or infinite, or a non-finite score, is a `NonFiniteResultError`
    (a ValueError) rather than ``exploitability = nan``.
    """
    _check_sizes(num_envs)
    gamma = game.default_discount if gamma is None else float(gamma)
    if not (math.isfinite(gamma) and 0.0 < gamma <= 1.0):
        raise ValueError(f"gamma = {gamma!r} is not allowed; expected a finite number in (0, 1]")
    check_game_size(game, num_envs, "num_envs")
    pol = as_policy(policy, game)
    result = _jitted_evaluate(game, pol.apply, pol.initial_carry, num_envs, gamma)(pol.params, key)
    return check_finite_result(result) if check_finite else result
