"""A two-sided Monte-Carlo bracket on the exploitability when the common noise cannot be
enumerated (macro's Gaussian shocks): docs/algorithms.md#a-bracket-for-continuous-noise.

``upper``: the hindsight exploitability on ``num_envs`` sampled paths (a best response that
knows each whole path: its expectation is >= the true, non-anticipating exploitability).
``lower``: the gain over the policy of one *feasible* non-anticipating response, evaluated
on those same paths.  The response is built beforehand on ``fit_paths`` independent paths
(regression Monte Carlo, as Longstaff and Schwartz's for American options): backward in t,
the continuation value ``E[V_{t+1}(s') | F_t]`` is a ridge regression, one per state
``s'``, on features of the public state at t (z_t, z_t^2, the shared observation), and the
response acts greedily on ``r_t(s, a) + gamma E_t[C_t(s')]``.  Its action at t reads only
what is known at t, and its construction is independent of the evaluation paths, so its
expected gain is <= that of the best non-anticipating response.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mfax.dynamics import Trajectory, rollout_fn
from mfax.games import check_game_size
from mfax.games.base import Game
from mfax.policies import MeanFieldPolicy
from mfax.xla import compiler_options

#: ridge penalty on the standardised features (relative to the number of fit paths): keeps
#: the regression well posed when features are collinear (z and the prices)
RIDGE = 1e-3
#: a feature whose spread over the fit paths is below this (relative to its size) is
#: constant there (no common noise) and left out, so that the regression is the plain mean
CONSTANT_FEATURE = 1e-5
#: a relative change of the step reward above this when only the next draw changes means
#: that the reward reads it (float noise of the same computation stays far below)
REWARD_LEAK = 1e-5
#: the fit paths' key is this fold of the evaluation key: an independent stream
FIT_STREAM = 0x5EED


class Bracket(NamedTuple):
    """Lower and upper bounds on the (non-anticipating) exploitability, with their
    Monte-Carlo standard errors over the ``E`` evaluation paths."""

    lower: jax.Array
    lower_se: jax.Array
    upper: jax.Array
    upper_se: jax.Array
    per_env_lower: jax.Array  # [E] gain of the response over the policy on each path
    per_env_upper: jax.Array  # [E] hindsight exploitability on each path
    response_actions: jax.Array  # [T, E, S] the response's action on each evaluation path


class _Fit(NamedTuple):
    """Per time step: feature standardisation and regression coefficients."""

    mean: jax.Array  # [T, F] feature means over the fit paths
    scale: jax.Array  # [T, F] 1 / std, or 0 for a constant feature
    intercept: jax.Array  # [T, S] mean continuation value
    coef: jax.Array  # [T, F, S]


def _features(traj: Trajectory) -> jax.Array:
    """``[T, E, F]``: the public state at t that the continuation value is regressed on."""
    z = traj.common_noise[..., None]
    return jnp.concatenate([z, z * z, traj.raw_obs], -1)


def _continuation(fit_t, feats):
    """``C[E, S]``: the regressed ``E[V_{t+1} | F_t]`` at the features ``feats[E, F]``."""
    mean, scale, intercept, coef = fit_t
    return intercept + ((feats - mean) * scale) @ coef


def _greedy(game: Game, gamma: float, agg, mu, reward, cont):
    """Kernel rows at t and the response's action ``argmax_a r + gamma E[C]`` ``[E, S]``."""
    rows = jax.vmap(game.kernel_rows)(agg, mu)
    return rows, jnp.argmax(reward + gamma * game.kernel_expectation(cont, rows), -1)


def _take(q, actions):
    return jnp.take_along_axis(q, actions[..., None], -1)[..., 0]


def fit_response(game: Game, traj: Trajectory, gamma: float) -> _Fit:
    """Regression Monte Carlo on the fit paths ``traj``, backward from ``V_T = 0``: at each
    t regress ``V_{t+1}`` on the features, act greedily on the fitted continuation, and
    carry the value that action *realises* on each path (not the fitted max, which would
    pile up the regressions' optimistic errors)."""
    feats = _features(traj)
    num = feats.shape[1]

    def step(v_next, xs):
        agg, mu, reward, f = xs
        mean = jnp.mean(f, 0)
        std = jnp.std(f, 0)
        scale = jnp.where(std > CONSTANT_FEATURE * (1 + jnp.abs(mean)), 1 / std, 0.0)
        x = (f - mean) * scale
        intercept = jnp.mean(v_next, 0)
        gram = x.T @ x + RIDGE * num * jnp.eye(x.shape[1])
        coef = jnp.linalg.solve(gram, x.T @ (v_next - intercept))
        fit_t = (mean, scale, intercept, coef)
        rows, act = _greedy(game, gamma, agg, mu, reward, _continuation(fit_t, f))
        v = _take(reward + gamma * game.kernel_expectation(v_next, rows), act)
        return v, fit_t

    _, fit = lax.scan(
        step,
        jnp.zeros_like(traj.mu_final),
        (traj.aggregate, traj.mu, traj.reward, feats),
        reverse=True,
    )
    return _Fit(*fit)


def response_gain(game: Game, traj: Trajectory, gamma: float, fit: _Fit):
    """The fitted response played on the paths ``traj``: its gain over the policy per path
    ``[E]`` (``sum_s mu_0 (W_0 - V_0)``) and its actions ``[T, E, S]``.

    The gap ``G = W - V`` is carried directly, as `mfax.evaluation.exploitability_of` does
    for the best response: ``G_t = sum_a pi (W_t - Q^W_t[a] + gamma E[G_{t+1}])``, which
    avoids subtracting two large returns (macro's); the first term is not >= 0 here."""

    def step(carry, xs):
        w_next, g_next = carry
        agg, mu, reward, pi, f, fit_t = xs
        rows, act = _greedy(game, gamma, agg, mu, reward, _continuation(fit_t, f))
        ew, eg = game.kernel_expectation(jnp.stack([w_next, g_next]), rows)
        q_w = reward + gamma * ew
        w = _take(q_w, act)
        g = jnp.sum(pi * (w[..., None] - q_w + gamma * eg), -1)
        return (w, g), act

    zeros = jnp.zeros_like(traj.mu_final)
    (_, g0), actions = lax.scan(
        step,
        (zeros, zeros),
        (traj.aggregate, traj.mu, traj.reward, traj.policy, _features(traj), tuple(fit)),
        reverse=True,
    )
    return jnp.sum(traj.mu0 * g0, -1), actions.astype(jnp.int32)


def reward_reads_next_noise(game: Game, traj: Trajectory) -> jax.Array:
    """Largest change of the step reward when the next aggregate (its common noise) is
    taken from another path: the greedy response reads ``r_t`` when acting at t, which is
    only feasible if ``r_t`` does not depend on the draw made after t (macro's does not)."""
    if traj.mu.shape[0] < 2:
        return jnp.zeros(())
    now = jax.tree.map(lambda x: x[:-1], traj.aggregate)
    other = jax.tree.map(lambda x: jnp.roll(x[1:], 1, axis=1), traj.aggregate)
    alt = jax.vmap(jax.vmap(game.reward))(now, traj.mu[:-1], other, traj.mu[1:])
    base = traj.reward[:-1]
    return jnp.max(jnp.abs(alt - base)) / (1 + jnp.max(jnp.abs(base)))


@functools.lru_cache(maxsize=32)
def _jitted_bracket(game, apply, initial_carry, num_envs, fit_paths, gamma, fast_compile):
    from mfax.evaluation import exploitability_of  # evaluation imports this module

    policy = MeanFieldPolicy(apply, None, initial_carry)
    run, run_fit = rollout_fn(game, policy, num_envs), rollout_fn(game, policy, fit_paths)

    def evaluate(params, key):
        fresh = run(params, key)  # the paths of the default (hindsight) evaluation
        fit_traj = run_fit(params, jax.random.fold_in(key, FIT_STREAM))
        fit = fit_response(game, fit_traj, gamma)
        gain, actions = response_gain(game, fresh, gamma, fit)
        return (
            exploitability_of(game, fresh, gamma),
            gain,
            actions,
            reward_reads_next_noise(game, fit_traj),
        )

    return jax.jit(evaluate, compiler_options=compiler_options(fast_compile, old_emitters=True))


def _mean_se(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.mean(x), jnp.std(x, ddof=1) / math.sqrt(x.shape[0])


def default_fit_paths(num_envs: int) -> int:
    """As many as the evaluation paths, at least 64: the regression has only ``3 + obs_dim``
    features per time step and state, and the fit rollout's memory then stays within that
    of the evaluation (more fit paths would only tighten the lower bound)."""
    return max(64, num_envs)


def bracket(
    game: Game,
    policy: MeanFieldPolicy,
    key: jax.Array,
    num_envs: int,
    gamma: float,
    fit_paths: int | None = None,
    fast_compile: bool = False,
):
    """``(hindsight EvalResult, Bracket)`` of ``policy`` on ``num_envs`` >= 2 evaluation
    paths drawn from ``key`` (the paths of the default ``evaluate_policy`` call with that
    key) and ``fit_paths`` independent ones (default `default_fit_paths`) to build the
    response.  Discounted values only (the response is greedy for ``gamma``).
    ``fast_compile``: see `mfax.xla.compiler_options`."""
    if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 2:
        raise ValueError(
            f"num_envs = {num_envs!r} is not allowed for the exploitability "
            "bracket; expected an integer >= 2 (its standard errors need two "
            "paths or more)"
        )
    fit_paths = default_fit_paths(num_envs) if fit_paths is None else fit_paths
    if isinstance(fit_paths, bool) or not isinstance(fit_paths, int) or fit_paths < 2:
        raise ValueError(
            f"fit_paths = {fit_paths!r} is not allowed; expected None (the "
            f"default, {default_fit_paths(num_envs)} here) or an integer >= 2"
        )
    # both rollouts are held at once (the fitted response is played on the evaluation paths)
    check_game_size(game, num_envs + fit_paths, "num_envs + fit_paths")
    run = _jitted_bracket(
        game, policy.apply, policy.initial_carry, num_envs, fit_paths, float(gamma), fast_compile
    )
    hindsight, gain, actions, leak = run(policy.params, key)
    if float(leak) > REWARD_LEAK:
        raise ValueError(
            f"the exploitability bracket is not available for {game.name}: its step reward "
            "depends on the common noise drawn after the step (relative change "
            f"{float(leak):.3g} when that draw changes), so a response acting at t cannot "
            "read it; use best_response='hindsight'"
        )
    lower, lower_se = _mean_se(gain)
    # upper: the very number `exploitability` (a mean over the same paths, summed alike)
    upper, upper_se = hindsight.exploitability, _mean_se(hindsight.per_env_exploitability)[1]
    return hindsight, Bracket(
        lower, lower_se, upper, upper_se, gain, hindsight.per_env_exploitability, actions
    )


__all__ = [
    "Bracket",
    "bracket",
    "default_fit_paths",
    "fit_response",
    "response_gain",
    "reward_reads_next_noise",
]
