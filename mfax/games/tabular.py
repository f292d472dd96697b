"""A generic finite game from arrays a user supplies (docs/games.md#tabular-games).

`make_tabular_game` takes the initial distribution ``mu_0[S]``, the individual
dynamics as a dense transition tensor ``P[S, A, S]`` or as kernel rows
``(idx[S, A, K], prob[S, A, K])``, and the reward as a table (``[S, A]`` or
``[T, S, A]``) or as a JAX function ``reward(t, state, action, mu) -> scalar``
of the step's mean field.  Every input is checked with an error that names it.
The game has no common noise, so the tabular solvers, `evaluate_policy`,
rollouts (push-forward and sampled) and the policy-gradient learners all take it.

A dense tensor is stored as kernel rows with ``K`` = the largest number of
successors of one (state, action) pair, so sparse dynamics stay cheap; a
transition tensor with full rows makes ``K = S`` (slow beyond a few hundred states).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mfax.games.base import ClockAggregate, Game
from mfax.games.params import (
    MAX_KERNEL_ENTRIES,
    GameParams,
    _gb,
    estimate_bytes,
    memory_limit,
)

_TOL = 1e-5  # probability rows may deviate this much from summing to 1 (float32 input)


@dataclasses.dataclass(frozen=True, eq=False)
class TabularParams(GameParams):
    """The checked arrays of a tabular game; compared by identity (arrays are not hashable)."""

    game_name = "tabular"
    size_params = ("initial_distribution", "transitions", "horizon")

    name: str
    horizon: int
    mu0: np.ndarray  # [S] float32
    idx: np.ndarray  # [S, A, K] int32
    prob: np.ndarray  # [S, A, K] float32
    reward_table: np.ndarray | None  # [T, S, A] float32, or None with reward_fn
    reward_fn: Callable | None
    discount: float
    common_noise: bool = False

    def deterministic_hint(self) -> dict[str, str]:
        return {}

    def sizes(self) -> tuple[int, int, int]:
        return self.idx.shape  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        S, A, K = self.sizes()
        return {
            "name": self.name,
            "num_states": S,
            "num_actions": A,
            "kernel_size": K,
            "horizon": self.horizon,
            "discount": self.discount,
            "reward": "table" if self.reward_fn is None else "function",
        }

    def check_size(self, num_envs: int = 1, envs_name: str | None = None) -> None:
        S, A, K = self.sizes()
        T = self.horizon
        need = estimate_bytes(S, A, K, T, num_envs)
        limit, what = memory_limit()
        if need > limit:
            raise ValueError(
                f"tabular game {self.name!r}: S = {S}, A = {A}, K = {K}, T = {T} needs about "
                f"{_gb(need)} of memory, more than the {_gb(limit)} allowed ({what}); reduce the "
                "number of states, successors per row (K) or the horizon"
                + (f", or {envs_name}" if envs_name and num_envs > 1 else "")
            )
        if T * S * A * K > MAX_KERNEL_ENTRIES:
            raise ValueError(
                f"tabular game {self.name!r}: one episode visits T * S * A * K = {T * S * A * K:.3g} "
                f"kernel entries (S = {S}, A = {A}, K = {K}, T = {T}), more than the "
                f"{MAX_KERNEL_ENTRIES:.3g} allowed; reduce the states, successors per row or horizon"
            )


class TabularGame(Game):
    """A game from user arrays; build it with `make_tabular_game`."""

    name = "tabular"
    obs_names = ("time",)

    def __init__(self, params: TabularParams):
        self.params = params
        self.name = params.name
        self.default_discount = params.discount
        self.num_states, self.num_actions, self.kernel_size = params.sizes()
        self.obs_dim = 1

    def reset(self, key):
        agg = ClockAggregate.start()
        return agg, jnp.asarray(self.params.mu0)

    def kernel(self, agg, mu):
        return jnp.asarray(self.params.idx), jnp.asarray(self.params.prob)

    def next_aggregate(self, key, agg):
        return agg._replace(t=agg.t + 1)

    def reward(self, agg, mu, agg_next, mu_next):
        p = self.params
        if p.reward_fn is None:
            return jnp.asarray(p.reward_table)[jnp.minimum(agg.t, p.horizon - 1)]
        return _reward_table(p.reward_fn, agg.t, mu, self.num_states, self.num_actions)

    def raw_observation(self, agg, mu):
        return agg.t.astype(jnp.float32)[None]

    def observation(self, agg, mu):
        return self.raw_observation(agg, mu) / self.horizon

    def action_values(self):
        return np.arange(self.num_actions, dtype=np.float32)

    def state_coords(self):
        return {
            "state": (
                np.arange(self.num_states, dtype=np.float32),
                {"long_name": "state index", "units": "1"},
            )
        }

    def state_features(self):
        S = self.num_states
        return (np.arange(S, dtype=np.float32) / max(S - 1, 1))[:, None]


def _reward_table(fn, t, mu, S, A):
    """``fn(t, state, action, mu)`` on every (state, action) pair: ``[S, A]``."""
    per_action = jax.vmap(fn, (None, None, 0, None))
    table = jax.vmap(per_action, (None, 0, None, None))(
        t, jnp.arange(S, dtype=jnp.int32), jnp.arange(A, dtype=jnp.int32), mu
    )
    return jnp.asarray(table, jnp.float32)


def _array(name: str, value: Any, ndims: tuple[int, ...], dtype=np.float64) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"tabular game: {name} must be an array of numbers, not {type(value).__name__}"
        ) from None
    if arr.ndim not in ndims:
        want = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"tabular game: {name} has shape {arr.shape}; expected a {want} array")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"tabular game: {name} has non-finite entries (NaN or inf)")
    return arr


def _check_rows(name: str, prob: np.ndarray) -> None:
    if prob.min() < 0:
        where = tuple(int(i) for i in np.argwhere(prob < 0)[0])
        raise ValueError(
            f"tabular game: {name} has a negative probability {prob[where]!r} at "
            f"index {where}; probabilities must be >= 0"
        )
    dev = np.abs(prob.sum(-1) - 1.0)
    if dev.max() > _TOL:
        s, a = (int(i) for i in np.unravel_index(np.argmax(dev), dev.shape))
        raise ValueError(
            f"tabular game: {name} row (state {s}, action {a}) sums to {prob[s, a].sum():.6g}; "
            f"every row of successor probabilities must sum to 1 (within {_TOL})"
        )


def _sparse_rows(transitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ``P[S, A, S]`` -> kernel rows with K = the most successors of any row."""
    nonzero = transitions > 0
    K = max(int(nonzero.sum(-1).max()), 1)
    # stable sort puts the nonzero successors first, in increasing order
    order = np.argsort(~nonzero, axis=-1, kind="stable")[..., :K]
    return order.astype(np.int32), np.take_along_axis(transitions, order, -1)


def make_tabular_game(
    initial_distribution: Any,
    reward: Any,
    horizon: int,
    transitions: Any = None,
    *,
    kernel_indices: Any = None,
    kernel_probs: Any = None,
    discount: float = 0.99,
    name: str = "tabular",
) -> TabularGame:
    """A game from arrays (see the module docstring).

    - ``initial_distribution``: ``mu_0[S]``, non-negative, summing to 1;
    - ``transitions``: ``P[S, A, S]``, ``P[s, a, s']`` the probability of moving from
      ``s`` to ``s'`` under action ``a``; or instead ``kernel_indices`` (int ``[S, A, K]``)
      and ``kernel_probs`` (``[S, A, K]``), the kernel rows of docs/games.md;
    - ``reward``: a table ``[S, A]`` (every step) or ``[T, S, A]``, or a function
      ``reward(t, state, action, mu) -> scalar`` written with ``jax.numpy`` (``t``, ``state``,
      ``action`` int32 scalars, ``mu[S]`` the mean field at ``t``);
    - ``horizon``: ``T`` steps; ``discount``: the default ``gamma`` in (0, 1].
    """
    if not isinstance(horizon, (int, np.integer)) or isinstance(horizon, bool) or horizon < 1:
        raise ValueError(
            f"tabular game: horizon = {horizon!r} is not allowed; expected an integer >= 1"
        )
    horizon = int(horizon)
    if (
        isinstance(discount, bool)
        or not isinstance(discount, (int, float, np.number))
        or not (math.isfinite(discount) and 0.0 < discount <= 1.0)
    ):
        raise ValueError(
            f"tabular game: discount = {discount!r} is not allowed; expected a number in (0, 1]"
        )
    mu0 = _array("initial_distribution", initial_distribution, (1,))
    S = mu0.shape[0]
    if S < 1 or mu0.min() < 0 or abs(mu0.sum() - 1.0) > _TOL:
        raise ValueError(
            f"tabular game: initial_distribution must be non-negative and sum to 1 "
            f"(min {mu0.min() if S else None!r}, sum {mu0.sum():.6g})"
        )

    if (transitions is None) == (kernel_indices is None and kernel_probs is None):
        raise ValueError(
            "tabular game: give either transitions [S, A, S] or kernel_indices and "
            "kernel_probs [S, A, K], not both or neither"
        )
    if transitions is not None:
        P = _array("transitions", transitions, (3,))
        if P.shape[0] != S or P.shape[2] != S or P.shape[1] < 1:
            raise ValueError(
                f"tabular game: transitions has shape {P.shape}; expected [S, A, S] "
                f"with S = {S} (the length of initial_distribution) and A >= 1"
            )
        _check_rows("transitions", P)
        idx, prob = _sparse_rows(P)
    else:
        if kernel_indices is None or kernel_probs is None:
            raise ValueError("tabular game: kernel_indices and kernel_probs go together; give both")
        prob = _array("kernel_probs", kernel_probs, (3,))
        raw_idx = _array("kernel_indices", kernel_indices, (3,))
        if raw_idx.shape != prob.shape or prob.shape[0] != S or min(prob.shape) < 1:
            raise ValueError(
                f"tabular game: kernel_indices {raw_idx.shape} and kernel_probs {prob.shape} "
                f"must have the same shape [S, A, K] with S = {S}"
            )
        if np.any(raw_idx != np.round(raw_idx)) or raw_idx.min() < 0 or raw_idx.max() >= S:
            raise ValueError(
                f"tabular game: kernel_indices must be integers in 0..{S - 1} "
                f"(got min {raw_idx.min()!r}, max {raw_idx.max()!r})"
            )
        _check_rows("kernel_probs", prob)
        idx = raw_idx.astype(np.int32)
    A = idx.shape[1]

    reward_table, reward_fn = None, None
    if callable(reward):
        reward_fn = reward
        try:
            out = jax.eval_shape(
                lambda t, mu: _reward_table(reward, t, mu, S, A),
                jax.ShapeDtypeStruct((), jnp.int32),
                jax.ShapeDtypeStruct((S,), jnp.float32),
            )
        except Exception as err:
            raise ValueError(
                f"tabular game: reward(t, state, action, mu) failed on int32 scalars t, state, "
                f"action and mu[{S}]: {type(err).__name__}: {err}"
            ) from None
        if out.shape != (S, A):
            raise ValueError(
                f"tabular game: reward(t, state, action, mu) must return a scalar; "
                f"on all pairs it gave shape {out.shape[2:]}"
            )
    else:
        R = _array("reward", reward, (2, 3))
        if R.shape[-2:] != (S, A) or (R.ndim == 3 and R.shape[0] != horizon):
            raise ValueError(
                f"tabular game: reward has shape {R.shape}; expected [S, A] = "
                f"({S}, {A}) or [T, S, A] = ({horizon}, {S}, {A}), or a function"
            )
        reward_table = np.broadcast_to(R, (horizon, S, A)).astype(np.float32)

    params = TabularParams(
        name=str(name),
        horizon=horizon,
        mu0=mu0.astype(np.float32),
        idx=idx,
        prob=prob.astype(np.float32),
        reward_table=reward_table,
        reward_fn=reward_fn,
        discount=float(discount),
    )
    params.check_size()
    return TabularGame(params)
