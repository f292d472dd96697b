"""Training configuration: a frozen, validated dataclass plus the YAML / ``--set`` layer.

A config file (or mapping) holds training keys at the top level and an
optional ``game:`` mapping of game-parameter overrides::

    num_iterations: 400
    eval_every: 20
    lr: 0.001
    hidden: [64, 64]
    game:
      num_states: 21
      horizon: 8

``--set key=value`` assignments use the same keys, and ``game.<param>=value``
for game parameters.  Unknown keys are errors listing the allowed keys.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mfax.algorithms import list_algorithms
from mfax.games import canonical_name, make_game, make_params
from mfax.network_config import HEADS, NetworkConfig, check_network_settings
from mfax.xla import compiler_options

if TYPE_CHECKING:
    from mfax.games.base import Game
    from mfax.games.noise import CommonNoise
    from mfax.games.params import GameParams

ALGORITHMS = tuple(list_algorithms("structural"))  # ("spg", "rspg")
HEAD_CHOICES = ("auto",) + HEADS
#: published batch sizes (docs/algorithms.md#published-settings): 128 environments, 8 for the macro game
DEFAULT_NUM_ENVS = 128
DEFAULT_NUM_ENVS_MACRO = 8
#: the training keys that are `NetworkConfig` settings
NETWORK_KEYS = (
    "state_input",
    "hidden",
    "embed_dim",
    "gru_hidden",
    "head",
    "activation",
    "factored",
)


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


#: the annotations (strings, `from __future__ import annotations`) of integer fields
INTEGER_TYPES = ("int", "int | None", "Optional[int]", "tuple[int, ...]")


def _whole(v: Any) -> Any:
    """``1000.0`` -> ``1000`` (also inside a list); anything else unchanged."""
    if isinstance(v, list):
        return [_whole(x) for x in v]
    return int(v) if isinstance(v, float) and v.is_integer() else v


class MappingConfig:
    """The file / ``--set`` layer shared by the training configs (SPG/RSPG and the RL learners)."""

    @classmethod
    def training_keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in ("game", "game_params")]

    @classmethod
    def from_mapping(
        cls,
        mapping: Mapping[str, Any],
        *,
        game: str | None = None,
        algo: str | None = None,
        source: str = "config",
    ) -> Any:
        """Build from the file layout: training keys plus an optional ``game:`` mapping.

        ``game`` and ``algo`` (from the command line) win over the mapping's; a
        mapping ``algo`` that disagrees with them is an error.
        """
        if mapping is None:
            mapping = {}
        if not isinstance(mapping, Mapping):
            raise ValueError(
                f"{source}: expected a mapping of keys to values, got {type(mapping).__name__}"
            )
        allowed = cls.training_keys()
        kwargs: dict[str, Any] = {}
        game_params: dict[str, Any] = {}
        for key, value in mapping.items():
            if key == "game":
                if not isinstance(value, Mapping):
                    raise ValueError(
                        f"{source}: 'game' must be a mapping of game parameters (e.g. "
                        f"game: {{num_states: 21}}), got {value!r}; the game itself is chosen "
                        "with --game"
                    )
                game_params.update(value)
            elif isinstance(key, str) and key.startswith("game."):
                game_params[key[len("game.") :]] = value
            elif key in allowed:
                kwargs[key] = value
            else:
                raise ValueError(
                    f"{source}: unknown key {key!r}; allowed keys: "
                    f"{', '.join(allowed)}, game (a mapping), game.<param>"
                )
        if algo is not None:
            if "algo" in kwargs and kwargs["algo"] != algo:
                raise ValueError(
                    f"{source}: 'algo' = {kwargs['algo']!r} disagrees with --algo {algo!r}"
                )
            kwargs["algo"] = algo
        if game is not None:
            kwargs["game"] = game
        for f in dataclasses.fields(cls):  # typed 1e3 (a float in YAML) for an integer key: 1000
            if f.name in kwargs and f.type in INTEGER_TYPES:
                kwargs[f.name] = _whole(kwargs[f.name])
        config = cls(game_params=game_params, **kwargs)
        config.game_parameters()  # validates them (a clear ValueError naming the key)
        return config

    def replace(self, **changes: Any) -> Any:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass(frozen=True)
class BaseTrainConfig(MappingConfig):
    """Fields, validation and derived settings shared by `TrainConfig` and `mfax.rl.RLConfig`.

    Subclasses set ``_PREFIX`` (error messages), ``_ALGORITHMS``, ``_RECURRENT_ALGO``,
    re-declare the defaults that differ, and assign ``__hash__ = BaseTrainConfig.__hash__``
    (a frozen dataclass otherwise gets a field-tuple hash, which fails on ``game_params``).
    """

    _PREFIX = "training config"
    _ALGORITHMS = ALGORITHMS
    _RECURRENT_ALGO = "rspg"
    #: the training step compiled with `mfax.xla.LIBRARY_DOTS_ONLY` (faster for SPG / RSPG)
    _LIBRARY_DOTS_ONLY = False

    game: str = "linear_quadratic"
    #: game-parameter overrides (see `mfax.make_game`)
    game_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    algo: str = "spg"
    num_iterations: int = 200
    eval_every: int = 20
    #: environments per iteration (None: the published default, see resolved_num_envs)
    num_envs: int | None = None
    #: environments per evaluation (None: num_envs)
    eval_num_envs: int | None = None
    #: discount (None: the game's default_discount)
    gamma: float | None = None
    lr: float = 1e-3
    #: the learning rate anneals linearly to lr * lr_end_fraction over all iterations
    lr_end_fraction: float = 0.1
    max_grad_norm: float = 1.0
    # --- network (the defaults of `NetworkConfig`, validated by it) ---
    state_input: str = NetworkConfig.state_input
    hidden: tuple[int, ...] = NetworkConfig.hidden
    embed_dim: int = NetworkConfig.embed_dim
    gru_hidden: int = NetworkConfig.gru_hidden
    #: auto: beta for games whose actions lie in (0, 1) (macro), categorical otherwise
    head: str = "auto"
    activation: str = NetworkConfig.activation
    factored: bool = NetworkConfig.factored
    #: compile with XLA's backend optimisation off (LLVM -O0): about half the compile
    #: time, iterations 2-3x slower; for smoke tests where compiling is the whole job
    fast_compile: bool = False

    def _bad(self, name: str, value: Any, allowed: str) -> ValueError:
        return ValueError(
            f"{self._PREFIX}: {name!r} = {value!r} is not allowed; expected {allowed}"
        )

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _check_ints(self, *names: str) -> None:
        for k in names:
            v = getattr(self, k)
            if not _is_int(v) or v < 1:
                raise self._bad(k, v, "an integer >= 1")
            self._set(k, int(v))

    def __post_init__(self):
        bad = self._bad
        for f in dataclasses.fields(self):  # nan / inf in any numeric key, here and in subclasses
            v = getattr(self, f.name)
            if _is_num(v) and not math.isfinite(v):
                raise bad(f.name, v, "a finite number")
        if not isinstance(self.game, str):
            raise bad("game", self.game, "a game name")
        self._set("game", canonical_name(self.game))
        if not isinstance(self.game_params, Mapping):
            raise bad("game", self.game_params, "a mapping of game parameters")
        self._set("game_params", dict(self.game_params))
        if self.algo not in self._ALGORITHMS:
            raise bad("algo", self.algo, " or ".join(self._ALGORITHMS))
        self._check_ints("num_iterations", "eval_every")
        if self.num_iterations % self.eval_every:
            raise bad(
                "num_iterations",
                self.num_iterations,
                f"a multiple of eval_every = {self.eval_every}",
            )
        for k in ("num_envs", "eval_num_envs"):
            v = getattr(self, k)
            if v is not None and (not _is_int(v) or v < 1):
                raise bad(k, v, "null (published default) or an integer >= 1")
            if v is not None:
                self._set(k, int(v))
        if self.gamma is not None and (not _is_num(self.gamma) or not 0.0 < self.gamma <= 1.0):
            raise bad("gamma", self.gamma, "null (the game's default) or a number in (0, 1]")
        if not _is_num(self.lr) or not math.isfinite(self.lr) or self.lr <= 0:
            raise bad("lr", self.lr, "a finite number > 0")
        if not _is_num(self.lr_end_fraction) or not 0.0 <= self.lr_end_fraction <= 1.0:
            raise bad("lr_end_fraction", self.lr_end_fraction, "a number in [0, 1]")
        if not _is_num(self.max_grad_norm) or not self.max_grad_norm > 0:
            raise bad("max_grad_norm", self.max_grad_norm, "a number > 0")
        if not isinstance(self.fast_compile, bool):
            raise bad("fast_compile", self.fast_compile, "true or false")
        network = check_network_settings(
            self._PREFIX, {k: getattr(self, k) for k in NETWORK_KEYS}, heads=HEAD_CHOICES
        )
        for k, v in network.items():
            self._set(k, v)

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True, default=repr))

    # --- derived settings -------------------------------------------------
    @property
    def recurrent(self) -> bool:
        return self.algo == self._RECURRENT_ALGO

    def game_parameters(self) -> GameParams:
        """The validated game parameters (no JAX; see `mfax.games.make_params`)."""
        return make_params(self.game, **self.game_params)

    def make_game(self) -> Game:
        return make_game(self.game, **self.game_params)

    def resolved_num_envs(self) -> int:
        if self.num_envs is not None:
            return self.num_envs
        return DEFAULT_NUM_ENVS_MACRO if self.game == "macro" else DEFAULT_NUM_ENVS

    def resolved_eval_num_envs(self) -> int:
        return self.eval_num_envs if self.eval_num_envs is not None else self.resolved_num_envs()

    def resolved_gamma(self, game: Game) -> float:
        return float(game.default_discount if self.gamma is None else self.gamma)

    def compiler_options(self, *, old_emitters: bool = False) -> dict[str, Any] | None:
        """XLA options for a program the trainer compiles (`jax.jit(compiler_options=)`):
        ``old_emitters`` for its `init` and `evaluate` (`mfax.xla.OLD_EMITTERS`), else
        the training step's."""
        return compiler_options(
            self.fast_compile,
            old_emitters=old_emitters,
            library_dots_only=self._LIBRARY_DOTS_ONLY and not old_emitters,
        )

    def _beta_allowed(self) -> bool:
        """Whether ``head: auto`` may pick a beta head (games with actions in (0, 1))."""
        return True

    def network(self, game: Game) -> NetworkConfig:
        head = self.head
        if head == "auto":
            values = np.asarray(game.action_values())
            beta_ok = values.min() > 0 and values.max() < 1
            head = "beta" if beta_ok and self._beta_allowed() else "categorical"
        return NetworkConfig(
            recurrent=self.recurrent,
            state_input=self.state_input,
            hidden=self.hidden,
            embed_dim=self.embed_dim,
            gru_hidden=self.gru_hidden,
            head=head,
            activation=self.activation,
            factored=self.factored,
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["game_params"] = dict(self.game_params)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


#: the most common-noise paths (environments per iteration) of ``noise: exact``
MAX_EXACT_PATHS = 4096
#: the values of `TrainConfig.noise`
NOISE_CHOICES = {
    "sampled": "num_envs environments with sampled common noise",
    "exact": "every common-noise path weighted by its probability: an exact policy gradient",
}


@dataclasses.dataclass(frozen=True)
class TrainConfig(BaseTrainConfig):
    """Settings of an SPG / RSPG run.  ``None`` entries take the published defaults
    (``num_envs``: 128, or 8 for macro)."""

    #: the batch of an iteration: ``sampled``, ``num_envs`` environments whose common noise
    #: is drawn from the run's key; ``exact``, one environment per common-noise path of the
    #: game, weighted by its probability (`mfax.noise_tree`), so ``num_envs`` is unused and
    #: the training curve's evaluation is exact too (see `mfax.training.spg`)
    noise: str = "sampled"
    #: weight of the policy's entropy in the return, in units of the first batch's mean
    #: absolute reward per step, annealed linearly to 0 over the run (`mfax.training.spg`)
    ent_coef: float = 0.1

    __hash__ = BaseTrainConfig.__hash__
    _LIBRARY_DOTS_ONLY = True

    def __post_init__(self):
        super().__post_init__()
        if not _is_num(self.ent_coef) or self.ent_coef < 0:
            raise self._bad("ent_coef", self.ent_coef, "a number >= 0")
        if not isinstance(self.noise, str) or self.noise not in NOISE_CHOICES:
            raise self._bad(
                "noise", self.noise, " or ".join(f"{k!r} ({v})" for k, v in NOISE_CHOICES.items())
            )
        if self.noise == "exact":  # refused here rather than when the run starts (no JAX)
            params = self.game_parameters()
            self._count_exact_paths(params.noise(), params, self.game)

    def exact_noise_paths(self, game: Game | None = None):
        """The common-noise paths of ``noise: exact`` (`mfax.noise_tree.NoisePaths`) for
        ``game`` (default: the config's), refused as the config itself is (a ValueError
        naming the key) if they cannot be enumerated or are too many."""
        from mfax.noise_tree import enumerate_paths

        game = self.make_game() if game is None else game
        return enumerate_paths(game, self._count_exact_paths(game.noise, game.params, game.name))

    def _count_exact_paths(self, noise: CommonNoise, params: GameParams, name: str) -> int:
        """The number of paths of ``noise``; a ValueError naming the key if that noise
        cannot be enumerated (macro's is continuous) or has more than `MAX_EXACT_PATHS`
        paths, or if the game is too large for one environment per path.  No JAX: the
        game's parameters declare its noise (`mfax.games.params.GameParams.noise`)."""
        bad = f"{self._PREFIX}: 'noise' = 'exact' is not allowed for {name}"
        instead = "; use noise: sampled (num_envs sampled environments per iteration)"
        if not noise.finite:
            raise ValueError(
                f"{bad}: its common noise cannot be enumerated ({noise.continuous}){instead}"
            )
        n = noise.num_paths
        if n > MAX_EXACT_PATHS:
            raise ValueError(
                f"{bad}: it has {n} common-noise paths ({noise.describe()}), "
                f"more than {MAX_EXACT_PATHS}, each one environment of every "
                f"iteration{instead}"
            )
        params.check_size(n, "the number of common-noise paths (noise: exact)")
        return n


def merge_mappings(*mappings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge file-layout mappings left to right; ``game`` mappings merge key by key."""
    out: dict[str, Any] = {}
    for m in mappings:
        for key, value in (m or {}).items():
            if (
                key == "game"
                and isinstance(value, Mapping)
                and isinstance(out.get("game"), Mapping)
            ):
                out["game"] = {**out["game"], **value}
            else:
                out[key] = value
    return out
