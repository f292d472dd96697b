"""The game interface shared by the push-forward and the sample-based dynamics.

A game is a frozen, validated set of parameters plus pure functions of
(key, aggregate state, mean field).  Its transition *kernel* -- for every
(state, action) pair a short row of ``K`` successor indices with
probabilities -- is defined once; `mfax.dynamics` derives both the exact
push-forward update and the sampled one from it.
"""

from __future__ import annotations

import abc
import dataclasses
import types
import typing
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np


class GameParams:
    """Base for the frozen parameter dataclass of a game.

    Subclasses are ``@dataclasses.dataclass(frozen=True)``; `from_overrides`
    coerces and type-checks user input, `validate` checks ranges.
    """

    game_name: ClassVar[str] = "game"

    def validate(self) -> None:  # pragma: no cover - overridden
        pass

    @classmethod
    def allowed(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_overrides(cls, **overrides: Any) -> "GameParams":
        allowed = cls.allowed()
        for name in overrides:
            if name not in allowed:
                raise ValueError(
                    f"{cls.game_name}: unknown parameter {name!r}; allowed parameters: "
                    + ", ".join(allowed)
                )
        hints = typing.get_type_hints(cls)
        kwargs = {name: _coerce(cls.game_name, name, value, hints[name])
                  for name, value in overrides.items()}
        params = cls(**kwargs)
        params.validate()
        return params

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    def fail(self, name: str, allowed: str) -> typing.NoReturn:
        raise ValueError(
            f"{self.game_name}: parameter {name!r} = {getattr(self, name)!r} is not allowed; "
            f"expected {allowed}"
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


def _coerce(game: str, name: str, value: Any, hint: Any) -> Any:
    """Coerce a user-given value to the field's declared type or raise a clear error."""

    def bad(expected: str) -> ValueError:
        return ValueError(
            f"{game}: parameter {name!r} = {value!r} is not allowed; expected {expected}"
        )

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(game, name, value, inner[0])
    if hint is bool:
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise bad("true or false")
    if hint is int:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad("an integer")
    if hint is float:
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            return float(value)
        raise bad("a number")
    if origin is tuple:
        if not isinstance(value, (list, tuple, np.ndarray)):
            raise bad("a list of numbers")
        elem = args[0]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(game, name, v, elem) for v in value)
        if len(value) != len(args):
            raise bad(f"a list of {len(args)} numbers")
        return tuple(_coerce(game, name, v, a) for v, a in zip(value, args))
    return value


def check_probabilities(params: GameParams, atoms: str, probs: str) -> None:
    a, p = getattr(params, atoms), getattr(params, probs)
    if len(a) == 0:
        params.fail(atoms, "a non-empty list")
    if len(p) != len(a):
        params.fail(probs, f"{len(a)} probabilities, one per entry of {atoms!r}")
    if any(x < 0 for x in p) or abs(sum(p) - 1.0) > 1e-6:
        params.fail(probs, "non-negative probabilities that sum to 1")


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
