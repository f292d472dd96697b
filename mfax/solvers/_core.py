"""What every tabular solver shares: settings, the per-iteration evaluation and its tools.

An algorithm is a `Solver`: a state (arrays), the ``[T, S, A]`` policy that
state stands for, and an update from one `Evaluation` of that policy.  The
driver (`mfax.solvers`) runs ``num_iterations`` of evaluate-then-update in one
`lax.scan`; the exploitability of each iterate is `mfax.evaluation.exploitability_of`
on its push-forward rollout, exactly what `mfax.evaluate_policy` reports.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from mfax.dynamics import expectation, push_forward, rollout_fn
from mfax.evaluation import EvalResult, exploitability_of
from mfax.games.base import Game
from mfax.policies import MeanFieldPolicy, _table_apply


@dataclasses.dataclass(frozen=True)
class Setting:
    """A solver setting: a float (traced, so it can be swept with vmap) or an int (static)."""

    name: str
    default: float
    doc: str
    low: float | None = None  # bounds; `open_low` / `open_high` exclude them
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    integer: bool = False

    def allowed(self) -> str:
        kind = "an integer" if self.integer else "a finite number"
        if self.low is not None and self.high is not None:
            return (
                f"{kind} in {'(' if self.open_low else '['}{self.low:g}, "
                f"{self.high:g}{')' if self.open_high else ']'}"
            )
        if self.low is not None:
            return f"{kind} {'>' if self.open_low else '>='} {self.low:g}"
        return kind

    def ok(self, value: float) -> bool:
        if not math.isfinite(value) or (self.integer and value != int(value)):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.open_high else value > self.high):
            return False
        return True


@dataclasses.dataclass(frozen=True)
class Solver:
    """``init(ctx, s) -> state``, ``policy(ctx, state, s) -> [T, S, A]``,
    ``update(ctx, state, ev, k, s) -> state`` with ``s`` the settings (name -> value)."""

    name: str
    summary: str
    settings: tuple[Setting, ...]
    init: Callable[..., Any]
    policy: Callable[..., jax.Array]
    update: Callable[..., Any]


class Context:
    """The game, discount and sizes, with the computations the solvers share."""

    def __init__(self, game: Game, gamma: float):
        self.game, self.gamma = game, gamma
        self.T, self.S, self.A = game.horizon, game.num_states, game.num_actions
        self._run = rollout_fn(game, MeanFieldPolicy(_table_apply), num_envs=1)

    def uniform(self) -> jax.Array:
        return jnp.full((self.T, self.S, self.A), 1.0 / self.A, jnp.float32)

    def evaluate(self, table: jax.Array) -> Evaluation:
        # the key is unused: solvers only take deterministic games
        traj = self._run(table, jax.random.PRNGKey(0))
        return Evaluation(self, table, exploitability_of(self.game, traj, self.gamma))

    def backward(self, traj, step, init, xs=None):
        """Reverse scan over t on the frozen path: ``step(carry, ev, reward[S, A], x_t)`` with
        ``ev(v[..., S]) -> E[v(s')][..., S, A]`` under the kernel at t."""
        agg = jax.tree_util.tree_map(lambda x: x[:, 0], traj.aggregate)

        def body(carry, inputs):
            agg_t, mu_t, reward_t, x_t = inputs
            idx, prob = self.game.kernel(agg_t, mu_t)

            def ev(v):
                lead = v.shape[:-1]
                flat = v.reshape((-1, 1, self.S))
                return expectation(flat, idx[None], prob[None]).reshape(lead + (self.S, self.A))

            return step(carry, ev, reward_t, x_t)

        return lax.scan(body, init, (agg, traj.mu[:, 0], traj.reward[:, 0], xs), reverse=True)

    def occupancy(self, traj, policy: jax.Array) -> jax.Array:
        """State distribution ``nu[T, S]`` of one agent playing ``policy[T, S, A]`` on the
        frozen mean-field path (the mean field it would induce if everybody played it)."""
        agg = jax.tree_util.tree_map(lambda x: x[:, 0], traj.aggregate)

        def step(nu, xs):
            agg_t, mu_t, pi_t = xs
            idx, prob = self.game.kernel(agg_t, mu_t)
            return push_forward(nu[None], pi_t[None], idx[None], prob[None])[0], nu

        _, nus = lax.scan(step, traj.mu[0, 0], (agg, traj.mu[:, 0], policy))
        return nus


class Evaluation:
    """One iterate's rollout and exploitability, with its Q tables on demand."""

    def __init__(self, ctx: Context, table: jax.Array, result: EvalResult):
        self.ctx, self.table, self.result = ctx, table, result
        self.traj = result.trajectory

    def _q(self, values: jax.Array) -> jax.Array:
        """``r_t + gamma E[values_{t+1}]`` for ``values[T, S]`` (V_t), zero after T."""
        nxt = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])])

        def step(carry, ev, reward, v_next):
            return carry, reward + self.ctx.gamma * ev(v_next)

        _, q = self.ctx.backward(self.traj, step, None, nxt)
        return q

    def q_star(self) -> jax.Array:
        """``Q*[T, S, A]``: the best response's action values against this mean field."""
        return self._q(self.result.best_response_value[:, 0])

    def q_policy(self) -> jax.Array:
        """``Q^pi[T, S, A]``: the policy's own action values against its mean field."""
        return self._q(self.result.policy_value[:, 0])


def tied_best_response(q: jax.Array) -> jax.Array:
    """Greedy policy that splits evenly between (numerically) tied actions.

    Breaking ties towards the first action would push symmetric games such as
    the linear-quadratic one off their symmetric equilibrium.
    """
    best = jnp.max(q, -1, keepdims=True)
    ties = (q >= best - 1e-5 * jnp.maximum(1.0, jnp.abs(best))).astype(jnp.float32)
    return ties / jnp.sum(ties, -1, keepdims=True)


def normalise_joint(joint: jax.Array) -> jax.Array:
    """Policy from a state-action occupancy sum ``joint[T, S, A]``; unvisited states play
    uniformly."""
    mass = jnp.sum(joint, -1, keepdims=True)
    return jnp.where(mass > 0, joint / jnp.where(mass > 0, mass, 1.0), 1.0 / joint.shape[-1])
