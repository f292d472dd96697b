"""The game interface shared by the push-forward and the sample-based dynamics.

A game is a frozen, validated set of parameters plus pure functions of
(key, aggregate state, mean field).  Its transition *kernel* -- for every
(state, action) pair a short row of ``K`` successor indices with
probabilities -- is defined once; `mfax.dynamics` derives both the exact
push-forward update and the sampled one from it.
"""

from __future__ import annotations

import abc
import functools
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import mfax.threefry  # noqa: F401  (before any program is traced: random bits unrolled on CPU)
from mfax.games.noise import CommonNoise
from mfax.games.params import GameParams


class ClockAggregate(NamedTuple):
    """The aggregate state of a game without common noise: the time step, and ``z`` kept
    at 0 so that every aggregate has the field (`ClockAggregate.start` at reset)."""

    t: jax.Array  # int32
    z: jax.Array  # float32, always 0

    @classmethod
    def start(cls) -> ClockAggregate:
        return cls(t=jnp.zeros((), jnp.int32), z=jnp.zeros((), jnp.float32))


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
    #: whether a gradient through the exact push-forward recomputes the kernel rows in
    #: its backward pass rather than storing them for every step of the rollout
    #: (`mfax.dynamics.next_mean_field`): faster where the rows are many and cheap to
    #: compute, slower where they are dear (docs/PERFORMANCE.md, "The kernel rows
    #: recomputed")
    recompute_kernel_rows: ClassVar[bool] = False

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

    # The exact recursions (push-forward rollout, policy value, exploitability) reach the
    # kernel only through these three, so a game whose kernel factors can skip the dense
    # rows (`Macro`: wealth and income move independently).  The default is the dense
    # kernel; sampling agents and the model-free learners always read `kernel`.
    def kernel_rows(self, agg: Any, mu: jax.Array) -> Any:
        """The kernel at ``(agg, mu)`` in whatever form `kernel_expectation` and
        `kernel_push` read (a pytree, vmapped over environments like `kernel`)."""
        return self.kernel(agg, mu)

    def kernel_expectation(self, values: jax.Array, rows: Any) -> jax.Array:
        """``E[values(s')]`` per (state, action) under `kernel_rows` batched ``[E, ...]``:
        ``values[..., E, S]`` -> ``[..., E, S, A]`` (as `mfax.dynamics.expectation`)."""
        from mfax.dynamics import expectation

        return expectation(values, *rows)

    def kernel_push(self, mu: jax.Array, pi: jax.Array, rows: Any) -> jax.Array:
        """The next mean field ``[E, S]`` from ``mu[E, S]`` and ``pi[E, S, A]`` under
        `kernel_rows` batched ``[E, ...]`` (as `mfax.dynamics.push_forward`)."""
        from mfax.dynamics import push_forward

        return push_forward(mu, pi, *rows)

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

    @functools.cached_property
    def noise(self) -> CommonNoise:
        """The game's common noise (`CommonNoise`), as its parameters declare it
        (`GameParams.noise`)."""
        return self.params.noise()

    def initial_state(self, values: dict[str, jax.Array]) -> tuple[Any, jax.Array]:
        """`reset` given the values of the reset draws of `noise` (a dict by field).  The
        default serves games without reset draws, whose reset ignores its key."""
        if self.noise.reset_draws:
            raise NotImplementedError(f"{self.name}: initial_state for its reset draws")
        return self.reset(jax.random.PRNGKey(0))

    @property
    def has_random_reset(self) -> bool:
        """Whether `reset` is random (tabular solvers need a deterministic game)."""
        return bool(self.params.common_noise)


def deterministic_row(successor: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A kernel row with one successor of probability 1 (``idio_noise`` off)."""
    return successor[..., None].astype(jnp.int32), jnp.ones(successor.shape + (1,), jnp.float32)
