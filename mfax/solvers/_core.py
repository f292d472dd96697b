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

from mfax.dynamics import rollout_fn
from mfax.evaluation import EvalResult, exploitability_of
from mfax.games.base import Game
from mfax.noise_tree import NoisePaths, node_mean, paths_rollout_fn
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
    """The game, discount and sizes, with the computations the solvers share.

    With ``paths`` (`mfax.noise_tree.NoisePaths`, the enumerated common-noise tree) every
    table gets a path axis after time, ``[T, P, S, A]``: path ``p`` plays ``table[:, p]``,
    each path is one push-forward environment, and the backward inductions average over
    the paths of a node before any max or softmax (what is known at ``t``), so that
    policies computed from them are equal on the paths of a node (adapted); the
    exploitability is the exact adapted one of `mfax.evaluate_policy(noise="exact",
    best_response="adapted")`.
    """

    def __init__(self, game: Game, gamma: float, paths: NoisePaths | None = None):
        self.game, self.gamma, self.paths = game, gamma, paths
        self.T, self.S, self.A = game.horizon, game.num_states, game.num_actions
        if paths is None:
            self.batch: tuple[int, ...] = ()
            self._run = rollout_fn(game, MeanFieldPolicy(_table_apply), num_envs=1)
        else:
            P = int(paths.weight.shape[0])
            self.batch = (P,)
            self._values = {f: jnp.asarray(v) for f, v in paths.values.items()}
            self._weight = jnp.asarray(paths.weight)
            self._node = jnp.asarray(paths.node)
            self._run = paths_rollout_fn(
                game, MeanFieldPolicy(_table_apply), P, per_path_params=True
            )
        self.table_shape = (self.T,) + self.batch + (self.S, self.A)
        self.value_shape = self.batch + (self.S,)

    def zeros(self) -> jax.Array:
        return jnp.zeros(self.table_shape, jnp.float32)

    def uniform(self) -> jax.Array:
        return jnp.full(self.table_shape, 1.0 / self.A, jnp.float32)

    def evaluate(self, table: jax.Array) -> Evaluation:
        if self.paths is None:
            # the key is unused: without a tree, solvers only take deterministic games
            traj = self._run(table, jax.random.PRNGKey(0))
            return Evaluation(self, table, exploitability_of(self.game, traj, self.gamma))
        traj = self._run(jnp.moveaxis(table, 1, 0), self._values)
        result = exploitability_of(
            self.game, traj, self.gamma, weight=self._weight, node=self._node
        )
        return Evaluation(self, table, result)

    def per_env(self, x):
        """A recorded ``[T, E, ...]`` array as the solvers see it: ``[T, ...]`` (the one
        environment) or, on a tree, ``[T, P, ...]``."""
        return x if self.paths is not None else x[:, 0]

    def _kernel(self, agg_t, mu_t):
        """``game.kernel_rows`` at t with the environment axis first (``1`` or ``P``)."""
        if self.paths is None:
            return jax.tree_util.tree_map(lambda x: x[None], self.game.kernel_rows(agg_t, mu_t))
        return jax.vmap(self.game.kernel_rows)(agg_t, mu_t)

    def backward(self, traj, step, init, xs=None):
        """Reverse scan over t on the frozen path: ``step(carry, ev, reward[S, A], x_t)`` with
        ``ev(v[..., S]) -> E[v(s')][..., S, A]`` under the kernel at t (on a tree: ``[P]``
        before ``S``, reward and expectation averaged over each node's paths)."""
        agg = jax.tree_util.tree_map(self.per_env, traj.aggregate)
        tree = self.paths is not None
        node = self._node if tree else jnp.zeros((self.T,), jnp.int32)

        def body(carry, inputs):
            agg_t, mu_t, reward_t, node_t, x_t = inputs
            rows = self._kernel(agg_t, mu_t)
            E = mu_t.shape[0] if tree else 1
            if tree:
                reward_t = node_mean(reward_t, node_t, self._weight, 0)

            def ev(v):
                lead = v.shape[: v.ndim - 1 - len(self.batch)]
                out = self.game.kernel_expectation(v.reshape((-1, E, self.S)), rows)
                if tree:
                    out = node_mean(out, node_t, self._weight, 1)
                return out.reshape(lead + self.batch + (self.S, self.A))

            return step(carry, ev, reward_t, x_t)

        return lax.scan(
            body,
            init,
            (agg, self.per_env(traj.mu), self.per_env(traj.reward), node, xs),
            reverse=True,
        )

    def occupancy(self, traj, policy: jax.Array) -> jax.Array:
        """State distribution ``nu[T, S]`` (``[T, P, S]`` on a tree) of one agent playing
        ``policy`` on the frozen mean-field path (the mean field it would induce if
        everybody played it)."""
        agg = jax.tree_util.tree_map(self.per_env, traj.aggregate)
        mus = self.per_env(traj.mu)
        flat = (-1, self.S)

        def step(nu, xs):
            agg_t, mu_t, pi_t = xs
            rows = self._kernel(agg_t, mu_t)
            nxt = self.game.kernel_push(nu.reshape(flat), pi_t.reshape(flat + (self.A,)), rows)
            return nxt.reshape(nu.shape), nu

        _, nus = lax.scan(step, mus[0], (agg, mus, policy))
        return nus


class Evaluation:
    """One iterate's rollout and exploitability, with its Q tables on demand."""

    def __init__(self, ctx: Context, table: jax.Array, result: EvalResult):
        self.ctx, self.table, self.result = ctx, table, result
        self.traj = result.trajectory

    def _q(self, values: jax.Array) -> jax.Array:
        """``r_t + gamma E[values_{t+1}]`` for recorded ``values[T, E, S]`` (V_t), zero after T."""
        values = self.ctx.per_env(values)
        nxt = jnp.concatenate([values[1:], jnp.zeros_like(values[:1])])

        def step(carry, ev, reward, v_next):
            return carry, reward + self.ctx.gamma * ev(v_next)

        _, q = self.ctx.backward(self.traj, step, None, nxt)
        return q

    def q_star(self) -> jax.Array:
        """``Q*[T, S, A]``: the best response's action values against this mean field."""
        return self._q(self.result.best_response_value)

    def q_policy(self) -> jax.Array:
        """``Q^pi[T, S, A]``: the policy's own action values against its mean field."""
        return self._q(self.result.policy_value)


def tied_best_response(q: jax.Array) -> jax.Array:
    """Greedy policy that splits evenly between (numerically) tied actions.

    Breaking ties towards the first action would push symmetric games such as
    the linear-quadratic one off their symmetric equilibrium.
    """
    best = jnp.max(q, -1, keepdims=True)
    ties = (q >= best - 1e-5 * jnp.maximum(1.0, jnp.abs(best))).astype(jnp.float32)
    return ties / jnp.sum(ties, -1, keepdims=True)


def normalise_joint(joint: jax.Array) -> jax.Array:
    """Policy from a state-action occupancy sum ``joint[T, (P,) S, A]``; unvisited states play
    uniformly."""
    mass = jnp.sum(joint, -1, keepdims=True)
    return jnp.where(mass > 0, joint / jnp.where(mass > 0, mass, 1.0), 1.0 / joint.shape[-1])
