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
import math
import os
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
        if isinstance(value, (float, np.floating)) and not math.isfinite(value):
            raise bad("a finite number (an integer)")
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise bad("an integer")
    if hint is float:
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise bad("a finite number")
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

    #: the parameters that set the array sizes (named when a game is too large)
    size_params: ClassVar[tuple[str, ...]] = ("num_states", "horizon")

    @property
    def horizon(self) -> int:
        return self.params.horizon

    # --- sizes ----------------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def sizes(cls, params: GameParams) -> tuple[int, int, int]:
        """``(num_states, num_actions, kernel_size)`` of the game with ``params``, computed
        without building anything (see `check_size`)."""

    @classmethod
    def memory_estimate(cls, params: GameParams, num_envs: int = 1) -> int:
        """Bytes needed to roll out and evaluate ``num_envs`` environments (see `estimate_bytes`)."""
        S, A, K = cls.sizes(params)
        return estimate_bytes(S, A, K, params.horizon, num_envs)

    @classmethod
    def check_size(cls, params: GameParams, num_envs: int = 1,
                   envs_name: str | None = None) -> None:
        """Refuse (ValueError naming the size parameters) a game that cannot fit in memory or
        would take unreasonably long; `mfax.make_game` calls it for one environment, the
        commands again for the number of environments they will run."""
        S, A, K = cls.sizes(params)
        _check_size(cls, params, S, A, K, num_envs, envs_name)

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


# --- size limits ----------------------------------------------------------------------------
#: the largest T * S * A * K (kernel entries visited in one episode of one environment): above
#: it one evaluation takes many minutes on a CPU (the published sizes are below 2e7)
MAX_KERNEL_ENTRIES = 10**9
#: share of the machine's physical memory one run may plan to use
MEMORY_FRACTION = 0.5
#: environment variable overriding the memory limit (in GB)
MEMORY_LIMIT_ENV = "MFAX_MEMORY_LIMIT_GB"


def estimate_bytes(num_states: int, num_actions: int, kernel_size: int, horizon: int,
                   num_envs: int = 1) -> int:
    """Memory of a push-forward rollout and its evaluation (float32 / int32 entries).

    Per environment: the recorded policy and reward tables ``[T, S, A]`` (two), the
    mean fields and value arrays ``[T, S]`` (four), and one step's kernel rows
    ``[S, A, K]`` (indices, probabilities and the gathered values, about six).
    """
    S, A, K, T = int(num_states), int(num_actions), int(kernel_size), int(horizon)
    per_env = 4 * (2 * T * S * A + 4 * T * S) + 24 * S * A * K
    return int(num_envs) * per_env


def memory_limit() -> tuple[int, str]:
    """``(bytes, description)``: `MEMORY_FRACTION` of the physical memory, or
    ``$MFAX_MEMORY_LIMIT_GB``."""
    env = os.environ.get(MEMORY_LIMIT_ENV)
    if env:
        try:
            gb = float(env)
        except ValueError:
            gb = float("nan")
        if not math.isfinite(gb) or gb <= 0:
            raise ValueError(f"${MEMORY_LIMIT_ENV} = {env!r} is not allowed; expected a "
                             "finite number of GB > 0")
        return int(gb * 1e9), f"${MEMORY_LIMIT_ENV}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 0
    if total <= 0:
        total = 16 * 10**9  # unknown: assume a 16 GB machine
    return int(total * MEMORY_FRACTION), (
        f"{MEMORY_FRACTION:.0%} of this machine's {_gb(total)}; set ${MEMORY_LIMIT_ENV} "
        "to change it")


def _gb(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def _check_size(cls: type, params: GameParams, S: int, A: int, K: int, num_envs: int,
                envs_name: str | None) -> None:
    T = params.horizon
    names = [n for n in cls.size_params if hasattr(params, n)]
    defaults = type(params)()
    changed = [n for n in names if getattr(params, n) != getattr(defaults, n)] or names
    given = ", ".join(f"{n} = {getattr(params, n)!r}" for n in changed)
    reduce = list(changed) + ([envs_name] if envs_name and num_envs > 1 else [])
    advice = "reduce " + (" or ".join(reduce) if len(reduce) < 3
                          else ", ".join(reduce[:-1]) + " or " + reduce[-1])
    sizes = f"S = {S}, A = {A}, K = {K}, T = {T}"
    envs = (f" with {num_envs} environments ({envs_name})" if envs_name and num_envs > 1
            else " for one environment")
    need = estimate_bytes(S, A, K, T, num_envs)
    limit, what = memory_limit()
    if need > limit:
        raise ValueError(
            f"{cls.name}: {given} is too large{envs}: it needs about {_gb(need)} of memory "
            f"(policy and reward tables [T, S, A], kernel rows [S, A, K], value arrays; "
            f"{sizes}), more than the {_gb(limit)} allowed ({what}); {advice}")
    work = T * S * A * K
    if work > MAX_KERNEL_ENTRIES:
        raise ValueError(
            f"{cls.name}: {given} is too large: one episode visits T * S * A * K = {work:.3g} "
            f"kernel entries ({sizes}), more than the {MAX_KERNEL_ENTRIES:.3g} allowed (a run "
            f"at this size would take hours); {advice}")


def check_game_size(game: Game, num_envs: int = 1, envs_name: str | None = None) -> None:
    """`Game.check_size` for a built game and ``num_envs`` environments (named ``envs_name``)."""
    type(game).check_size(game.params, int(num_envs), envs_name)
