"""Mean-field policies: what `rollout` and `evaluate_policy` accept.

A mean-field policy maps the shared observation (and, for recurrent
policies, a per-environment carry) to action probabilities ``[S, A]`` for
every grid state at once.  Users may pass:

- a table ``[S, A]`` or a time-dependent table ``[T, S, A]``;
- a callable ``obs -> probs[S, A]``;
- a recurrent callable ``(obs, carry) -> (probs[S, A], carry)`` that also has
  an ``initial_carry()`` method (the carry is reset at every episode start);
- a `MeanFieldPolicy`, the normal form the others are converted to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mfax.games.base import Game


@dataclasses.dataclass(frozen=True)
class MeanFieldPolicy:
    """``apply(params, carry, obs, t) -> (probs[S, A], carry)``.

    ``apply`` and ``initial_carry`` are static (hashable) functions so that
    jitted evaluation is compiled once per kind of policy; ``params`` is a
    pytree of arrays passed as a traced argument.
    """

    apply: Callable[[Any, Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
    params: Any = None
    initial_carry: Callable[[], Any] = tuple


def _table_apply(table, carry, obs, t):
    probs = table if table.ndim == 2 else table[jnp.minimum(t, table.shape[0] - 1)]
    return probs, carry


@dataclasses.dataclass(frozen=True, eq=False)
class _CallableApply:
    """Wraps a user callable as a static ``apply``; equal (same compile) for the same callable."""

    fn: Callable
    recurrent: bool

    def __call__(self, params, carry, obs, t):
        return self.fn(obs, carry) if self.recurrent else (self.fn(obs), carry)

    def __eq__(self, other):
        return isinstance(other, _CallableApply) and (self.fn, self.recurrent) == (
            other.fn,
            other.recurrent,
        )

    def __hash__(self):
        return hash((id(self.fn), self.recurrent))


def validate_table(game: Game, table: Any, name: str = "policy") -> jax.Array:
    arr = np.asarray(table, dtype=np.float64)
    S, A, T = game.num_states, game.num_actions, game.horizon
    if arr.shape not in ((S, A), (T, S, A)):
        raise ValueError(
            f"{name}: table of shape {arr.shape} does not fit game {game.name!r}; "
            f"expected [S, A] = ({S}, {A}) or [T, S, A] = ({T}, {S}, {A})"
        )
    if not np.all(np.isfinite(arr)) or arr.min() < 0:
        raise ValueError(f"{name}: probabilities must be finite and >= 0 (min {arr.min()!r})")
    worst = float(np.abs(arr.sum(-1) - 1.0).max())
    if worst > 1e-4:
        raise ValueError(f"{name}: each row must sum to 1 (largest deviation {worst:.3g})")
    return jnp.asarray(arr, jnp.float32)


def as_policy(policy: Any, game: Game) -> MeanFieldPolicy:
    """Convert any accepted policy form to a `MeanFieldPolicy`."""
    if isinstance(policy, MeanFieldPolicy):
        return policy
    if isinstance(policy, (np.ndarray, jax.Array, list, tuple)):
        return MeanFieldPolicy(_table_apply, validate_table(game, policy))
    if callable(policy):
        if hasattr(policy, "initial_carry"):
            return MeanFieldPolicy(_CallableApply(policy, True), None, policy.initial_carry)
        return MeanFieldPolicy(_CallableApply(policy, False))
    raise TypeError(
        f"policy of type {type(policy).__name__} is not supported; pass a table [S, A] or "
        "[T, S, A], a callable obs -> probs[S, A], or a MeanFieldPolicy"
    )


def uniform_policy(game: Game) -> jax.Array:
    return jnp.full((game.num_states, game.num_actions), 1.0 / game.num_actions, jnp.float32)


def random_policy(game: Game, key: jax.Array, time_dependent: bool = True) -> jax.Array:
    """A random table with Dirichlet(1) rows (normalised exponentials), mostly for tests."""
    shape = ((game.horizon,) if time_dependent else ()) + (game.num_states, game.num_actions)
    draws = jax.random.exponential(key, shape)
    return draws / jnp.sum(draws, -1, keepdims=True)
