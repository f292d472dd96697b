"""A tabular reference solver: fictitious play on the push-forward game.

Fictitious play (Perrin et al., 2020) keeps the average of all past best
responses, averaged *per state with the weight of the state distribution of
the agent playing each of them*, so that the average policy induces the
average of their mean fields.  Each iteration: roll out the average policy,
compute its exploitability and a best response by backward induction,
propagate the best responder's state distribution along the frozen
mean-field path, and fold it into the average.  Exploitability decreases
roughly like 1/k on monotone or potential games such as the linear-quadratic
and beach-bar games.

It needs a game whose reset and steps are deterministic (no common noise,
and for the beach bar a fixed ``bar_location``): a table ``[T, S, A]`` has
no input with which to react to a random draw.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mfax.dynamics import expectation, push_forward, rollout_fn
from mfax.evaluation import exploitability_of
from mfax.games.base import Game
from mfax.policies import MeanFieldPolicy, _table_apply


class TabularSolution(NamedTuple):
    policy: jax.Array  # [T, S, A] the average policy after the last iteration
    exploitability: jax.Array  # [num_iterations + 1]; entry k is after k updates (0: uniform)
    policy_return: jax.Array  # [num_iterations + 1]


def _tied_best_response(game: Game, result, gamma: float) -> jax.Array:
    """Best response ``[T, S, A]`` that splits evenly between (numerically) tied actions.

    Breaking ties towards the first action would push symmetric games such
    as the linear-quadratic one off their symmetric equilibrium.
    """
    traj = result.trajectory
    v_next = jnp.concatenate([result.best_response_value[1:, 0], jnp.zeros_like(traj.mu_final)])
    agg = jax.tree_util.tree_map(lambda x: x[:, 0], traj.aggregate)
    idx, prob = jax.vmap(game.kernel)(agg, traj.mu[:, 0])
    # time plays the role of the environment axis: one kernel per t
    q = traj.reward[:, 0] + gamma * expectation(v_next, idx, prob)
    best = jnp.max(q, -1, keepdims=True)
    ties = (q >= best - 1e-5 * jnp.maximum(1.0, jnp.abs(best))).astype(jnp.float32)
    return ties / jnp.sum(ties, -1, keepdims=True)


def _state_weights(game: Game, traj, best: jax.Array) -> jax.Array:
    """State distribution ``nu[T, S]`` of one agent playing ``best[T, S, A]`` on the frozen path."""

    def step(nu, xs):
        agg, mu, probs = xs  # one environment, kept as a batch of 1
        idx, prob = jax.vmap(game.kernel)(agg, mu)
        return push_forward(nu, probs[None], idx, prob), nu[0]

    _, nus = lax.scan(step, traj.mu[0, :1], (traj.aggregate, traj.mu, best))
    return nus


def solve_tabular(game: Game, num_iterations: int = 200, gamma: float | None = None) -> TabularSolution:
    """Approximate the mean-field Nash equilibrium of a deterministic game by fictitious play."""
    if game.has_random_reset:
        hint = " and bar_location=<int>" if game.name == "beach_bar_1d" else ""
        raise ValueError(
            f"solve_tabular needs a deterministic game, but {game.name!r} has common_noise="
            f"{game.params.common_noise}" + (
                f", bar_location={game.params.bar_location}" if game.name == "beach_bar_1d" else "")
            + f"; make the game with common_noise=False{hint}")
    if not isinstance(num_iterations, int) or num_iterations < 1:
        raise ValueError(f"num_iterations = {num_iterations!r} is not allowed; expected an integer >= 1")
    gamma = game.default_discount if gamma is None else float(gamma)
    return _solve(game, num_iterations, gamma)


def _solve_fn(game: Game, num_iterations: int, gamma: float):
    T, S, A = game.horizon, game.num_states, game.num_actions
    run = rollout_fn(game, MeanFieldPolicy(_table_apply), num_envs=1)
    key = jax.random.PRNGKey(0)  # unused randomness: the game is deterministic

    def evaluate(table):
        result = exploitability_of(game, run(table, key), gamma)
        best = _tied_best_response(game, result, gamma)
        weights = _state_weights(game, result.trajectory, best)
        return result, weights, best

    def average(joint):
        # joint = sum_j nu_j pi_j [T, S, A]; states no best responder reaches play uniformly
        mass = jnp.sum(joint, -1, keepdims=True)
        return jnp.where(mass > 0, joint / jnp.where(mass > 0, mass, 1.0), 1.0 / A)

    def iteration(joint, _):
        result, weights, best = evaluate(average(joint))
        return joint + weights[..., None] * best, (result.exploitability, result.policy_return)

    def solve():
        # nothing averaged yet: iteration 0 plays the uniform policy, whose best
        # response is the first member of the average
        joint, (expl, ret) = lax.scan(iteration, jnp.zeros((T, S, A)), None, length=num_iterations)
        final = average(joint)
        result, _, _ = evaluate(final)
        return TabularSolution(policy=final, exploitability=jnp.append(expl, result.exploitability),
                               policy_return=jnp.append(ret, result.policy_return))

    return solve


@functools.lru_cache(maxsize=16)
def _jitted_solve(game, num_iterations, gamma):
    return jax.jit(_solve_fn(game, num_iterations, gamma))


def _solve(game, num_iterations, gamma):
    return _jitted_solve(game, num_iterations, gamma)()
