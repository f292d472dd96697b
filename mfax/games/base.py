"""The game interface shared by the push-forward and the sample-based dynamics.

A game is a frozen, validated set of parameters plus pure functions of
(key, aggregate state, mean field).  Its transition *kernel* -- for every
(state, action) pair a short row of ``K`` successor indices with
probabilities -- is defined once; `mfax.dynamics` derives both the exact
push-forward update and the sampled one from it.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from mfax.games.params import GameParams


class Game(abc.ABC):
    """A finite-horizon mean-field game on a grid of ``num_states`` points.

    ``Aggregate`` is a game-specific NamedTuple that always has fields ``t``
    (int32 time) and ``z`` (float32 common noise); it is the part of the
    environment state shared by all agents besides the mean field.
    """

    name: ClassVar[str]
    default_discount: ClassVar[float] = 0.99
    params: GameParams

    num_states: int
    num_actions: int
    kernel_size: int
    obs_dim: int
    #: names of the entries of the shared observation (raw, unnormalised)
    obs_names: tuple[str, ...]


    @property
    def horizon(self) -> int:
        return self.params.horizon

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.params == other.params  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.params))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params})"

    # --- dynamics ---------------------------------------------------------
    @abc.abstractmethod
    def reset(self, key: jax.Array) -> tuple[Any, jax.Array]:
        """Sample the initial aggregate state and return it with ``mu_0[S]``."""

    @abc.abstractmethod
    def kernel(self, agg: Any, mu: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Kernel rows: successor indices ``int32[S, A, K]`` and probabilities ``[S, A, K]``."""

    @abc.abstractmethod
    def next_aggregate(self, key: jax.Array, agg: Any) -> Any:
        """Advance time and common noise (the mean field is not needed by any game)."""

    @abc.abstractmethod
    def reward(self, agg: Any, mu: jax.Array, agg_next: Any, mu_next: jax.Array) -> jax.Array:
        """Rewards ``[S, A]`` of the step from ``t = agg.t`` (terminal when ``t + 1 == T``)."""

    @abc.abstractmethod
    def raw_observation(self, agg: Any, mu: jax.Array) -> jax.Array:
        """The shared observation in natural units, ``[obs_dim]``."""

    @abc.abstractmethod
    def observation(self, agg: Any, mu: jax.Array) -> jax.Array:
        """The normalised shared observation fed to policies, ``[obs_dim]``."""

    # --- grids --------------------------------------------------------------
    @abc.abstractmethod
    def action_values(self) -> np.ndarray:
        """The value of each discrete action, ``[A]``."""

    @abc.abstractmethod
    def state_coords(self) -> dict[str, tuple[np.ndarray, dict[str, str]]]:
        """Per-state coordinates ``name -> (values[S], attrs)`` (e.g. wealth, income)."""

    @abc.abstractmethod
    def state_features(self) -> np.ndarray:
        """Normalised state values ``[S, d]`` in [0, 1], the policy's `values` input."""

    def is_last(self, agg: Any) -> jax.Array:
        return agg.t + 1 >= self.horizon

    @property
    def has_random_reset(self) -> bool:
        """Whether `reset` is random (tabular solvers need a deterministic game)."""
        return bool(self.params.common_noise)


def deterministic_row(successor: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A kernel row with one successor of probability 1 (``idio_noise`` off)."""
    return successor[..., None].astype(jnp.int32), jnp.ones(successor.shape + (1,), jnp.float32)
