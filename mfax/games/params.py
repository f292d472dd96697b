"""The parameters of every game: frozen dataclasses that coerce and validate user
input and know the array sizes they imply (docs/games.md).

They live apart from the games' JAX code so that the pipeline (params.yaml
loading, `mfax configure`, Snakefile parsing) can check every game setting
and size without importing JAX.  About 500 lines because it holds one class per
game (their fields and checks) besides the shared coercion and size limits.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from typing import Any, ClassVar

import numpy as np

from mfax.games.noise import CommonNoise, NoiseDraw


class GameParams:
    """Base for the frozen parameter dataclass of a game.

    Subclasses are ``@dataclasses.dataclass(frozen=True)``; `from_overrides`
    coerces and type-checks user input, `validate` checks ranges.
    """

    game_name: ClassVar[str] = "game"
    #: the parameters that set the array sizes (named when a game is too large)
    size_params: ClassVar[tuple[str, ...]] = ("num_states", "horizon")

    def validate(self) -> None:  # pragma: no cover - overridden
        pass

    @classmethod
    def allowed(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_overrides(cls, **overrides: Any) -> GameParams:
        allowed = cls.allowed()
        for name in overrides:
            if name not in allowed:
                raise ValueError(
                    f"{cls.game_name}: unknown parameter {name!r}; allowed parameters: "
                    + ", ".join(allowed)
                )
        hints = typing.get_type_hints(cls)
        kwargs = {
            name: _coerce(cls.game_name, name, value, hints[name])
            for name, value in overrides.items()
        }
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

    def noise(self) -> CommonNoise:
        """The game's common noise (`mfax.games.noise`), declared from the parameters alone,
        so that it can be checked without building the game (JAX).  The default knows only
        games without any: a game with common noise declares it to be enumerated."""
        if getattr(self, "common_noise", False):
            return CommonNoise(
                continuous=f"{self.game_name} does not declare its common noise (GameParams.noise)"
            )
        return CommonNoise()

    def deterministic_hint(self) -> dict[str, str]:
        """The settings (name -> value to give) that make reset and every step deterministic,
        as tabular solvers need; empty if the game always is."""
        return {"common_noise": "False"} if hasattr(self, "common_noise") else {}

    # --- sizes ------------------------------------------------------------
    def sizes(self) -> tuple[int, int, int]:  # pragma: no cover - overridden
        """``(num_states, num_actions, kernel_size)`` of the game with these parameters,
        computed without building anything (see `check_size`)."""
        raise NotImplementedError

    def check_size(self, num_envs: int = 1, envs_name: str | None = None) -> None:
        """Refuse (ValueError naming the size parameters) a game that cannot fit in memory or
        would take unreasonably long; `mfax.make_game` calls it for one environment, the
        commands again for the number of environments they will run."""
        S, A, K = self.sizes()
        _check_size(self, S, A, K, int(num_envs), envs_name)


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


# --- size limits ----------------------------------------------------------------------------
#: the largest T * S * A * K (kernel entries visited in one episode of one environment): above
#: it one evaluation takes many minutes on a CPU (the published sizes are below 2e7)
MAX_KERNEL_ENTRIES = 10**9
#: share of the machine's physical memory one run may plan to use
MEMORY_FRACTION = 0.5
#: environment variable overriding the memory limit (in GB)
MEMORY_LIMIT_ENV = "MFAX_MEMORY_LIMIT_GB"


def estimate_bytes(
    num_states: int, num_actions: int, kernel_size: int, horizon: int, num_envs: int = 1
) -> int:
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
            raise ValueError(
                f"${MEMORY_LIMIT_ENV} = {env!r} is not allowed; expected a finite number of GB > 0"
            )
        return int(gb * 1e9), f"${MEMORY_LIMIT_ENV}"
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = 0
    if total <= 0:
        total = 16 * 10**9  # unknown: assume a 16 GB machine
    return int(total * MEMORY_FRACTION), (
        f"{MEMORY_FRACTION:.0%} of this machine's {_gb(total)}; set ${MEMORY_LIMIT_ENV} "
        "to change it"
    )


def _gb(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n / 1e3:.3g} kB"


def _check_size(
    params: GameParams, S: int, A: int, K: int, num_envs: int, envs_name: str | None
) -> None:
    T = params.horizon
    names = [n for n in params.size_params if hasattr(params, n)]
    defaults = type(params)()
    changed = [n for n in names if getattr(params, n) != getattr(defaults, n)] or names
    given = ", ".join(f"{n} = {getattr(params, n)!r}" for n in changed)
    reduce = list(changed) + ([envs_name] if envs_name and num_envs > 1 else [])
    advice = "reduce " + (
        " or ".join(reduce) if len(reduce) < 3 else ", ".join(reduce[:-1]) + " or " + reduce[-1]
    )
    sizes = f"S = {S}, A = {A}, K = {K}, T = {T}"
    envs = (
        f" with {num_envs} environments ({envs_name})"
        if envs_name and num_envs > 1
        else " for one environment"
    )
    need = estimate_bytes(S, A, K, T, num_envs)
    limit, what = memory_limit()
    if need > limit:
        raise ValueError(
            f"{params.game_name}: {given} is too large{envs}: it needs about {_gb(need)} of memory "
            f"(policy and reward tables [T, S, A], kernel rows [S, A, K], value arrays; "
            f"{sizes}), more than the {_gb(limit)} allowed ({what}); {advice}"
        )
    work = T * S * A * K
    if work > MAX_KERNEL_ENTRIES:
        raise ValueError(
            f"{params.game_name}: {given} is too large: one episode visits T * S * A * K = {work:.3g} "
            f"kernel entries ({sizes}), more than the {MAX_KERNEL_ENTRIES:.3g} allowed (a run "
            f"at this size would take hours); {advice}"
        )


# --- the games' parameters ---------------------------------------------------------------
class Grid1DParams(GameParams):
    """What the 1-D grid games share: positions ``0..num_states-1``, moves
    ``-max_action..max_action`` plus an idiosyncratic noise with ``noise_atoms``."""

    size_params = ("num_states", "horizon", "max_action", "noise_atoms")

    def sizes(self) -> tuple[int, int, int]:
        return (
            self.num_states,  # type: ignore[attr-defined]
            2 * self.max_action + 1,  # type: ignore[attr-defined]
            len(self.noise_atoms) if self.idio_noise else 1,
        )  # type: ignore[attr-defined]


def _normal_weights(atoms: tuple[float, ...]) -> tuple[float, ...]:
    w = [math.exp(-0.5 * a * a) for a in atoms]
    return tuple(x / sum(w) for x in w)


_ATOMS = tuple(float(d) for d in range(-3, 4))


@dataclasses.dataclass(frozen=True)
class LinearQuadraticParams(Grid1DParams):
    game_name = "linear_quadratic"

    num_states: int = 99
    horizon: int = 30
    kappa: float = 0.5
    c_action: float = 0.5
    q: float = 0.1
    c_term: float = 1.0
    sigma: float = 1.0
    rho: float = 0.5
    common_noise: bool = True
    idio_noise: bool = True
    #: actions are the integers -max_action..max_action
    max_action: int = 3
    noise_atoms: tuple[float, ...] = _ATOMS
    noise_probs: tuple[float, ...] = _normal_weights(_ATOMS)
    #: the common-noise push: eps_t = -push_size z for t < push_early_end,
    #: +push_size z for t > push_late_start
    push_size: float = 10.0
    push_early_end: int = 8
    push_late_start: int = 20

    def validate(self) -> None:
        if self.num_states < 2:
            self.fail("num_states", "an integer >= 2")
        if self.horizon < 1:
            self.fail("horizon", "an integer >= 1")
        if self.max_action < 0:
            self.fail("max_action", "an integer >= 0")
        if not 0.0 <= self.rho <= 1.0:
            self.fail("rho", "a number in [0, 1]")
        if self.sigma < 0:
            self.fail("sigma", "a number >= 0")
        for name in ("kappa", "c_action", "c_term"):
            if getattr(self, name) < 0:
                self.fail(name, "a number >= 0")
        check_probabilities(self, "noise_atoms", "noise_probs")

    def noise(self) -> CommonNoise:
        """The sign z in {+1, -1}, each with probability 1/2, drawn at reset."""
        if not self.common_noise:
            return CommonNoise()
        return CommonNoise((NoiseDraw("z", 0, (1.0, -1.0), (0.5, 0.5)),))


@dataclasses.dataclass(frozen=True)
class BeachBarParams(Grid1DParams):
    game_name = "beach_bar_1d"

    num_states: int = 101
    horizon: int = 30
    #: fixed bar position, or None for uniform on floor(S/4)..ceil(3S/4)-1 at reset
    bar_location: int | None = None
    crowd_aversion: float = 0.0
    common_noise: bool = True
    idio_noise: bool = True
    #: actions are the integers -max_action..max_action
    max_action: int = 5
    noise_atoms: tuple[int, ...] = (-2, -1, 0, 1, 2)
    noise_probs: tuple[float, ...] = (0.05, 0.1, 0.7, 0.1, 0.05)

    def deterministic_hint(self) -> dict[str, str]:
        return {"common_noise": "False", "bar_location": "<int>"}

    def bar_range(self) -> tuple[int, int]:
        """Inclusive range of random bar locations."""
        return self.num_states // 4, math.ceil(0.75 * self.num_states) - 1

    def validate(self) -> None:
        if self.num_states < 3:
            self.fail("num_states", "an integer >= 3")
        if self.horizon < 1:
            self.fail("horizon", "an integer >= 1")
        if self.max_action < 0:
            self.fail("max_action", "an integer >= 0")
        if self.bar_location is not None and not 0 <= self.bar_location < self.num_states:
            self.fail("bar_location", f"null (random) or an integer in 0..{self.num_states - 1}")
        if self.crowd_aversion < 0:
            self.fail("crowd_aversion", "a number >= 0")
        check_probabilities(self, "noise_atoms", "noise_probs")

    def noise(self) -> CommonNoise:
        """The bar location, uniform on `bar_range` at reset when `bar_location` is None;
        with common noise, the closure coin: z = 1 (open) or 0 (closed) with probability
        1/2 each, drawn by the step to t = T // 2 (no coin when T // 2 = 0)."""
        draws = []
        if self.bar_location is None:
            lo, hi = self.bar_range()
            n = hi - lo + 1
            draws.append(
                NoiseDraw(
                    "bar",
                    0,
                    tuple(range(lo, hi + 1)),
                    (1.0 / n,) * n,
                    dtype="int32",
                    sampler="randint",
                )
            )
        if self.common_noise and self.horizon // 2 > 0:
            draws.append(NoiseDraw("z", self.horizon // 2, (1.0, 0.0), (0.5, 0.5)))
        return CommonNoise(tuple(draws))


@dataclasses.dataclass(frozen=True)
class MacroParams(GameParams):
    game_name = "macro"
    size_params = ("num_wealth", "num_income", "num_actions", "horizon", "income_atoms")

    horizon: int = 128
    crra: float = 2.0
    rho: float = 0.9
    nu: float = 0.03
    alpha: float = 0.36
    num_actions: int = 20
    wealth_bounds: tuple[float, float] = (0.0, 99.0)
    income_bounds: tuple[float, float] = (0.1, 2.0)
    num_wealth: int = 200
    num_income: int = 5
    common_noise: bool = True
    idio_noise: bool = True
    #: income moves by these many grid steps with these probabilities
    income_atoms: tuple[int, ...] = (-1, 0, 1)
    income_probs: tuple[float, ...] = (0.1, 0.8, 0.1)

    def sizes(self) -> tuple[int, int, int]:
        return (
            self.num_wealth * self.num_income,
            self.num_actions,
            2 * (len(self.income_atoms) if self.idio_noise else 1),
        )

    def validate(self) -> None:
        if self.horizon < 1:
            self.fail("horizon", "an integer >= 1")
        for name in ("num_actions", "num_wealth", "num_income"):
            if getattr(self, name) < 2:
                self.fail(name, "an integer >= 2")
        if self.crra <= 0:
            self.fail("crra", "a number > 0")
        if not 0.0 < self.alpha < 1.0:
            self.fail("alpha", "a number in (0, 1)")
        if self.nu < 0:
            self.fail("nu", "a number >= 0")
        if not -1.0 < self.rho < 1.0:
            self.fail("rho", "a number in (-1, 1)")
        for name in ("wealth_bounds", "income_bounds"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo < hi:
                self.fail(name, "[lo, hi] with 0 <= lo < hi")
        if self.income_bounds[0] <= 0:
            self.fail("income_bounds", "[lo, hi] with 0 < lo < hi (income must be positive)")
        check_probabilities(self, "income_atoms", "income_probs")

    def noise(self) -> CommonNoise:
        """A Gaussian innovation at every step: continuous, so it cannot be enumerated."""
        if self.common_noise and self.nu > 0:
            return CommonNoise(
                continuous=f"continuous: the productivity shock z' = rho z + "
                f"nu eps, eps ~ N(0, 1), at every step (nu = {self.nu})"
            )
        return CommonNoise()  # z stays 0


@dataclasses.dataclass(frozen=True)
class CrowdRingParams(Grid1DParams):
    """Crowd aversion on a ring, after OpenSpiel's ``crowd_modelling`` (docs/games.md#crowd_ring)."""

    game_name = "crowd_ring"

    num_states: int = 10
    horizon: int = 10
    #: weight of the congestion cost -log(mu[x])
    crowd_aversion: float = 1.0
    #: weight of the attraction to the middle of the ring, 1 - |x - S//2| / (S//2)
    position_weight: float = 1.0
    #: the ring has no aggregate randomness (kept as a field so every game has it)
    common_noise: bool = False
    idio_noise: bool = True
    max_action: int = 1
    noise_atoms: tuple[int, ...] = (-1, 0, 1)
    noise_probs: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3)

    def deterministic_hint(self) -> dict[str, str]:
        return {}

    def validate(self) -> None:
        if self.num_states < 2:
            self.fail("num_states", "an integer >= 2")
        if self.horizon < 1:
            self.fail("horizon", "an integer >= 1")
        if self.max_action < 0:
            self.fail("max_action", "an integer >= 0")
        if self.common_noise:
            self.fail("common_noise", "false (the crowd ring has no common noise)")
        for name in ("crowd_aversion", "position_weight"):
            if getattr(self, name) < 0:
                self.fail(name, "a number >= 0")
        check_probabilities(self, "noise_atoms", "noise_probs")


@dataclasses.dataclass(frozen=True)
class SusceptibleInfectedParams(GameParams):
    """Susceptible-infected-susceptible epidemic with social distancing, after MFGLib's
    ``susceptible_infected`` (Cui & Koeppl 2021; docs/games.md#susceptible_infected)."""

    game_name = "susceptible_infected"
    size_params = ("horizon",)

    #: decision steps t = 0..T-1 (MFGLib's T = 50 counts t = 0..50: 51 steps)
    horizon: int = 51
    #: mu_0(infected); mu_0(susceptible) = 1 - initial_infected
    initial_infected: float = 0.6
    #: a susceptible agent who goes out is infected with probability infection_rate * mu_t(I)
    infection_rate: float = 0.81
    #: an infected agent recovers with this probability whatever it does
    recovery_rate: float = 0.3
    #: cost of distancing, per step
    distancing_cost: float = 0.5
    #: cost of being infected, per step
    infection_cost: float = 1.0
    #: the epidemic has no aggregate randomness (kept as a field so every game has it)
    common_noise: bool = False

    def deterministic_hint(self) -> dict[str, str]:
        return {}

    def sizes(self) -> tuple[int, int, int]:
        return (2, 2, 2)

    def validate(self) -> None:
        if self.horizon < 1:
            self.fail("horizon", "an integer >= 1")
        for name in ("initial_infected", "infection_rate", "recovery_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                self.fail(name, "a probability in [0, 1]")
        for name in ("distancing_cost", "infection_cost"):
            if getattr(self, name) < 0:
                self.fail(name, "a number >= 0")
        if self.common_noise:
            self.fail("common_noise", "false (the epidemic has no common noise)")


@dataclasses.dataclass(frozen=True)
class RockPaperScissorsParams(GameParams):
    """Generalised rock-paper-scissors after Shapley (1964), MFGLib's ``rock_paper_scissors``
    (docs/games.md#rock_paper_scissors)."""

    game_name = "rock_paper_scissors"
    size_params = ("horizon",)

    #: decision steps t = 0..T-1 (MFGLib's T = 1 counts t = 0, 1: 2 steps)
    horizon: int = 2
    #: mu_0 over (start, rock, paper, scissors)
    initial_distribution: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)
    #: the game has no aggregate randomness (kept as a field so every game has it)
    common_noise: bool = False

    def deterministic_hint(self) -> dict[str, str]:
        return {}

    def sizes(self) -> tuple[int, int, int]:
        return (4, 3, 1)

    def validate(self) -> None:
        if self.horizon < 1:
            self.fail("horizon", "an integer >= 1")
        mu = self.initial_distribution
        if len(mu) != 4 or min(mu) < 0 or abs(sum(mu) - 1.0) > 1e-6:
            self.fail("initial_distribution", "4 non-negative numbers that sum to 1")
        if self.common_noise:
            self.fail("common_noise", "false (the game has no common noise)")
