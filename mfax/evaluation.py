"""Policy value, best response and exploitability by backward induction.

Definitions follow docs/algorithms.md#exploitability.  By default (``noise="sampled"``,
``best_response="hindsight"``) the best response is computed on each sampled common-noise
path separately, so it knows that path in hindsight: with common noise the exploitability is
then an upper bound on the true one (the published convention).  ``noise="exact"`` weights
every path of a finite common noise by its probability, and ``best_response="adapted"``
knows only the draws made so far (`mfax.noise_tree`); with continuous noise (macro) that
is a Monte-Carlo bracket (`mfax.noise_bracket`).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfax.dynamics import Trajectory, _check_sizes, rollout_fn
from mfax.games import check_game_size
from mfax.games.base import Game
from mfax.noise_bracket import bracket
from mfax.noise_tree import (
    DEFAULT_MAX_PATHS,
    enumerate_paths,
    node_mean,
    paths_rollout_fn,
    sample_paths,
)
from mfax.policies import MeanFieldPolicy, as_policy
from mfax.xla import compiler_options

NOISE_MODES = {
    "sampled": "a Monte-Carlo mean over num_envs sampled common-noise paths",
    "exact": "every path of a finite common noise, weighted by its probability",
}
BEST_RESPONSES = {
    "hindsight": "knows the whole common-noise path from t = 0 (an upper bound)",
    "adapted": "knows only the common noise drawn so far",
}


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
    #: which exploitability this is ("sampled" / "exact", "hindsight" / "adapted"); set by
    #: `evaluate_policy`, None from `exploitability_of`
    noise: str | None = None
    best_response: str | None = None
    #: [E] each environment's weight in the means: 1 / E, or with noise="exact" the
    #: probability of its common-noise path
    env_weight: jax.Array | None = None
    #: continuous noise with best_response="adapted" only (`mfax.noise_bracket`), else
    #: None: a lower bound (a feasible non-anticipating response's gain) and the upper
    #: bound (hindsight, = exploitability) with their Monte-Carlo standard errors
    exploitability_lower: jax.Array | None = None
    exploitability_lower_se: jax.Array | None = None
    exploitability_upper: jax.Array | None = None
    exploitability_upper_se: jax.Array | None = None


def _backward(game: Game, traj: Trajectory, update, init, node=None):
    """Reverse scan over t; kernels are recomputed from the stored (frozen) path."""

    def body(carry, xs):
        agg, mu, reward, pi, *node_t = xs
        rows = jax.vmap(game.kernel_rows)(agg, lax.stop_gradient(mu))
        return update(carry, rows, reward, pi, *node_t)

    xs = (traj.aggregate, traj.mu, traj.reward, traj.policy) + (() if node is None else (node,))
    return lax.scan(body, init, xs, reverse=True)


def policy_value(game: Game, traj: Trajectory, gamma: float) -> jax.Array:
    """``V_0[E, S]`` of the recorded policy on the recorded path (differentiable in the policy)."""

    def update(v, rows, reward, pi):
        v = jnp.sum(pi * (reward + gamma * game.kernel_expectation(v, rows)), -1)
        return v, None

    v0, _ = _backward(game, traj, update, jnp.zeros_like(traj.mu_final))
    return v0


def discounted_returns(traj: Trajectory, gamma: float) -> jax.Array:
    """``[E]``: each environment's ``sum_t gamma^t sum_s mu_t[s] sum_a pi_t[s, a] R_t[s, a]``.

    Equal to ``sum_s mu_0[s] V_0[s]`` of `policy_value`, computed forward.  On a rollout
    of `mfax.dynamics.rollout_fn` its gradient in the policy is also that of the
    policy-value recursion on the frozen path (``mu_t`` is there the agent's own
    distribution), and costs only the push-forward's transpose: no second pass over the
    kernels (docs/algorithms.md, SPG).
    """
    disc = gamma ** jnp.arange(traj.mu.shape[0], dtype=jnp.float32)
    per_step = jnp.sum(traj.mu * jnp.sum(traj.policy * traj.reward, -1), -1)  # [T, E]
    return jnp.tensordot(disc, per_step, 1)


def expected_return(traj: Trajectory, gamma: float) -> jax.Array:
    """``J``: the mean over environments of `discounted_returns`."""
    return jnp.mean(discounted_returns(traj, gamma))


def exploitability_of(
    game: Game,
    traj: Trajectory,
    gamma: float,
    *,
    weight: jax.Array | None = None,
    node: jax.Array | None = None,
) -> EvalResult:
    """Policy value, best response and exploitability on a rollout.

    Besides ``V`` and ``V*`` the recursion carries the gap ``D = V* - V``
    directly, ``D_t = sum_a pi (V*_t - Q*_t[a] + gamma E[D_{t+1}])``, whose
    every term is non-negative: exploitability is >= 0 in floating point too,
    with no cancellation between two large returns.

    ``weight[E]`` weights the environments in the means (default: equally).  With
    ``node[T, E]`` (ids of `mfax.noise_tree`) the environments are the paths of a noise
    tree and the best response is adapted: at each t, ``Q`` and ``Q*`` (reward and
    continuation) are averaged over the paths of a node before the max over actions.
    """
    gammas = jnp.asarray([gamma, 1.0], jnp.float32)[:, None, None, None]

    def update(carry, rows, reward, pi, node_t=None):
        _, _, gap = carry  # each [gamma, E, S]
        ev, ev_star, egap = game.kernel_expectation(jnp.stack(carry), rows)
        q = reward + gammas * ev
        q_star = reward + gammas * ev_star
        later = gammas * egap
        if node_t is not None:  # what is known at t: the mean over the node's paths
            q, q_star, later = (node_mean(x, node_t, weight, 1) for x in (q, q_star, later))
        best = jnp.max(q_star, -1)
        gap = jnp.sum(pi * (best[..., None] - q_star + later), -1)
        v = jnp.sum(pi * q, -1)
        return (v, best, gap), (v[0], best[0], jnp.argmax(q_star[0], -1))

    zeros = jnp.zeros((2,) + traj.mu_final.shape, jnp.float32)
    (v0, v_star0, gap0), (v_t, v_star_t, actions) = _backward(
        game, traj, update, (zeros, zeros, zeros), node
    )

    def mean(x):  # over [G, E, S]: weighted by mu_0, then over the environments
        per_env = jnp.sum(traj.mu0 * x, -1)
        return jnp.mean(per_env, -1) if weight is None else jnp.sum(weight * per_env, -1)

    expl, ret, br = mean(gap0), mean(v0), mean(v_star0)
    return EvalResult(
        exploitability=expl[0],
        policy_return=ret[0],
        best_response_return=br[0],
        exploitability_undiscounted=expl[1],
        policy_return_undiscounted=ret[1],
        best_response_return_undiscounted=br[1],
        per_env_exploitability=jnp.sum(traj.mu0 * gap0[0], -1),
        per_state_exploitability=gap0[0],
        policy_value=v_t,
        best_response_value=v_star_t,
        best_response_actions=actions.astype(jnp.int32),
        trajectory=traj,
    )


def evaluate_fn(game: Game, policy: MeanFieldPolicy, num_envs: int, gamma: float):
    """A pure, jit-able ``(params, key) -> EvalResult``: rollout then backward induction."""
    run = rollout_fn(game, policy, num_envs)

    def evaluate(params, key):
        return exploitability_of(game, run(params, key), gamma)

    return evaluate


@functools.lru_cache(maxsize=64)
def _jitted_evaluate(game, apply, initial_carry, num_envs, gamma, fast_compile):
    return jax.jit(
        evaluate_fn(game, MeanFieldPolicy(apply, None, initial_carry), num_envs, gamma),
        compiler_options=compiler_options(fast_compile, old_emitters=True),
    )


@functools.lru_cache(maxsize=64)
def _jitted_paths(game, apply, initial_carry, num_paths, gamma, adapted, fast_compile):
    """``(params, values, weight, node) -> EvalResult`` on the given noise paths."""
    run = paths_rollout_fn(game, MeanFieldPolicy(apply, None, initial_carry), num_paths)

    def evaluate(params, values, weight, node):
        return exploitability_of(
            game, run(params, values), gamma, weight=weight, node=node if adapted else None
        )

    return jax.jit(evaluate, compiler_options=compiler_options(fast_compile, old_emitters=True))


class NonFiniteResultError(ValueError):
    """An evaluation whose policy probabilities or results are NaN or infinite."""


def check_finite_result(result: EvalResult, what: str = "policy") -> EvalResult:
    """Raise `NonFiniteResultError` if the policy's action probabilities or the scores of
    ``result`` are not finite (e.g. an agent from a diverged run); return ``result``."""
    # on the host: checked once per evaluation, and eager jnp calls would compile two
    # small XLA programs per shape (about half a second of an evaluate job)
    finite = np.isfinite(np.asarray(result.trajectory.policy))
    if not finite.all():
        bad = ~finite.all(-1)  # [T, E, S]
        t, _, s = (int(i[0]) for i in np.nonzero(bad))
        raise NonFiniteResultError(
            f"{what}: the action probabilities are not finite (NaN or inf) in "
            f"{int(bad.sum())} of {bad.size} (time, environment, state) rows, first at t = {t}, "
            f"state {s}; the policy is unusable (typically a diverged training run: retrain "
            "with a smaller learning rate)"
        )
    for name in (
        "exploitability",
        "policy_return",
        "best_response_return",
        "exploitability_undiscounted",
        "policy_return_undiscounted",
        "best_response_return_undiscounted",
        "exploitability_lower",
        "exploitability_upper",
    ):
        if getattr(result, name) is None:  # no bracket
            continue
        value = float(np.asarray(getattr(result, name)))
        if not math.isfinite(value):
            raise NonFiniteResultError(
                f"{what}: {name} = {value!r} is not finite although the action probabilities "
                "are; the rewards overflowed (game parameters too extreme?)"
            )
    return result


def _choice(name: str, value: Any, allowed: dict[str, str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"{name} = {value!r} is not allowed; expected "
            + " or ".join(f"{k!r} ({v})" for k, v in allowed.items())
        )
    return value


def evaluate_policy(
    game: Game,
    policy: Any,
    key: jax.Array,
    num_envs: int = 1,
    gamma: float | None = None,
    check_finite: bool = True,
    *,
    noise: str = "sampled",
    best_response: str = "hindsight",
    max_paths: int = DEFAULT_MAX_PATHS,
    fit_paths: int | None = None,
    fast_compile: bool = False,
) -> EvalResult:
    """Exploitability of ``policy`` on push-forward environments.

    ``noise="sampled"`` (default): ``num_envs`` environments whose common noise is drawn
    from ``key``; the scalars are means over them.  ``noise="exact"``: one environment per
    common-noise path of the game (`Game.noise`), weighted by its probability
    (``env_weight``), so the scalars are exact expectations; ``key`` and ``num_envs`` are
    then unused.  It needs finite common noise (macro's is continuous: ValueError) and at
    most ``max_paths`` paths.

    ``best_response="hindsight"`` (default): the best response knows the whole noise path
    from t = 0, an upper bound on the exploitability with common noise.
    ``best_response="adapted"``: it knows the draws made so far only (backward induction
    on the tree of noise histories).  With ``noise="sampled"`` the reset draws are sampled
    as by default and every path of the later draws is enumerated below each, so the
    environments (``trajectory``, ``per_env_*``) are those ``num_envs * n`` paths.  Without
    common noise, or with noise drawn at reset only, adapted = hindsight.

    Continuous noise (macro) with ``noise="sampled", best_response="adapted"``: no tree to
    enumerate, so the result brackets the adapted exploitability (`mfax.noise_bracket`):
    ``exploitability`` and ``exploitability_upper`` are the hindsight value on the
    ``num_envs`` (>= 2) paths of the default call with ``key`` (``best_response`` then reads
    "hindsight"), ``exploitability_lower`` the gain of a non-anticipating response fitted
    on ``fit_paths`` independent paths (default: max(64, num_envs)), each with its
    standard error (``*_se``).  Other calls leave these four fields None (and ignore
    ``fit_paths``).

    ``gamma`` defaults to the game's published discount (0.99, macro 0.95).
    With ``check_finite`` (the default), a policy whose action probabilities
    are NaN or infinite, or a non-finite score, is a `NonFiniteResultError`
    (a ValueError) rather than ``exploitability = nan``.  ``fast_compile``: compile
    without XLA's backend optimisation (`mfax.xla.compiler_options`; the same numbers up to
    float rounding).
    """
    _choice("noise", noise, NOISE_MODES)
    _choice("best_response", best_response, BEST_RESPONSES)
    if not isinstance(fast_compile, bool):
        raise ValueError(f"fast_compile = {fast_compile!r} is not allowed; expected True or False")
    if (not isinstance(max_paths, int) or isinstance(max_paths, bool)) or max_paths < 1:
        raise ValueError(f"max_paths = {max_paths!r} is not allowed; expected an integer >= 1")
    if noise == "sampled":
        _check_sizes(num_envs)
    gamma = game.default_discount if gamma is None else float(gamma)
    if not (math.isfinite(gamma) and 0.0 < gamma <= 1.0):
        raise ValueError(f"gamma = {gamma!r} is not allowed; expected a finite number in (0, 1]")
    pol = as_policy(policy, game)
    if noise == "sampled" and best_response == "adapted" and not game.noise.finite:
        result, b = bracket(game, pol, key, num_envs, gamma, fit_paths, fast_compile)
        result = result._replace(
            noise=noise,
            best_response="hindsight",
            env_weight=jnp.full((num_envs,), 1.0 / num_envs, jnp.float32),
            exploitability_lower=b.lower,
            exploitability_lower_se=b.lower_se,
            exploitability_upper=b.upper,
            exploitability_upper_se=b.upper_se,
        )
        return check_finite_result(result) if check_finite else result
    if noise == "sampled" and best_response == "hindsight":
        check_game_size(game, num_envs, "num_envs")
        result = _jitted_evaluate(
            game, pol.apply, pol.initial_carry, num_envs, gamma, fast_compile
        )(pol.params, key)
        weight = jnp.full((num_envs,), 1.0 / num_envs, jnp.float32)
    else:
        paths = (
            enumerate_paths(game, max_paths)
            if noise == "exact"
            else sample_paths(game, key, num_envs, max_paths)
        )
        num_paths = paths.weight.shape[0]
        check_game_size(
            game,
            num_paths,
            "num_envs" if noise == "sampled" else "the number of common-noise paths",
        )  # one environment each
        run = _jitted_paths(
            game,
            pol.apply,
            pol.initial_carry,
            num_paths,
            gamma,
            best_response == "adapted",
            fast_compile,
        )
        weight = jnp.asarray(paths.weight)
        result = run(
            pol.params,
            {f: jnp.asarray(v) for f, v in paths.values.items()},
            weight,
            jnp.asarray(paths.node),
        )
    result = result._replace(noise=noise, best_response=best_response, env_weight=weight)
    return check_finite_result(result) if check_finite else result
