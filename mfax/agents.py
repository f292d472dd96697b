"""Trained mean-field agents on disk: one directory, no pickles.

Layout of an agent directory::

    weights.msgpack   flax.serialization.to_bytes(params) (msgpack)
    agent.json        what is needed to rebuild the policy without any other input:
                      format + format_version, algorithm, network architecture, game name
                      and every game parameter, the sizes (num_states, num_actions,
                      obs_dim), seed, gamma, the observation normalisation, a sha256 of
                      the weights, mfax / jax / flax versions, and free-form "training"
                      (config) and "metrics" entries
    curve.csv         training curve (optional): iteration, seconds, exploitability, ...

Every file is written atomically (`mfax.io.atomic_write`: temporary file +
``os.replace``), agent.json last, so a reader never sees half a file under the
final name; the weight checksum in agent.json detects a weights file that does
not belong to it.

The format is shared by all algorithms that produce a network mean-field
policy (SPG, RSPG here; IPPO, RIPPO, M-OMD elsewhere): call `save_agent`
with the `NetworkConfig`, the parameters and the game.  `load_agent` returns
an `Agent`, a `MeanFieldPolicy` that `mfax.evaluate_policy(agent.game, agent,
key)` accepts directly.  About 440 lines: the writer, and a reader that checks every
entry and file it uses (each with its own clear error, docs/ERRORS.md).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import flax
import flax.serialization
import jax
import numpy as np

from mfax._version import __version__
from mfax.games import make_game
from mfax.games.base import Game
from mfax.io import (
    atomic_write,
    curve_csv,
    read_curve,
    read_json_description,
)
from mfax.networks import NetworkApply, NetworkConfig, init_params, initial_carry_fn
from mfax.policies import MeanFieldPolicy

FORMAT_NAME = "mfax-agent"
#: 2: the published network layout (docs/LEARNING.md); version-1 weights do not fit it
FORMAT_VERSION = 2
WEIGHTS_FILE = "weights.msgpack"
DESCRIPTION_FILE = "agent.json"
CURVE_FILE = "curve.csv"
OBSERVATION_NOTE = (
    "the policy input is game.observation(agg, mu): the shared observation normalised as in "
    "docs/games.md (raw names: {names}); the state input is the state index or "
    "game.state_features()"
)


@dataclasses.dataclass(frozen=True, eq=False)
class Agent(MeanFieldPolicy):
    """A loaded agent: a `MeanFieldPolicy` plus its game and description."""

    game: Game | None = None
    network: NetworkConfig | None = None
    description: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    path: str = ""

    @property
    def algorithm(self) -> str:
        return self.description.get("algorithm", "")

    @property
    def gamma(self) -> float:
        g = self.description.get("gamma")
        return float(self.game.default_discount if g is None else g)

    @property
    def eval_num_envs(self) -> int:
        """Environments per evaluation during training (``training.eval_num_envs``, else
        ``training.num_envs``, else the published default); `load_agent` has checked them."""
        training = self.description.get("training") or {}
        for key in ("eval_num_envs", "num_envs"):
            if training.get(key) is not None:
                return int(training[key])
        from mfax.training.config import DEFAULT_NUM_ENVS, DEFAULT_NUM_ENVS_MACRO

        return DEFAULT_NUM_ENVS_MACRO if self.game.name == "macro" else DEFAULT_NUM_ENVS

    def curve(self) -> list[dict[str, float]]:
        """The training curve (empty if the agent has none)."""
        return read_curve(Path(self.path) / CURVE_FILE) if self.path else []


# --- writing ------------------------------------------------------------------------------
def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.generic, jax.Array, np.ndarray)):
        arr = np.asarray(x)
        return arr.item() if arr.ndim == 0 else arr.tolist()
    if isinstance(x, float) and not math.isfinite(x):
        return repr(x)  # JSON has no nan / inf
    return x


def params_template(network: NetworkConfig, game: Game) -> Any:
    """Zeros with the structure, shapes and dtypes of ``init_params(network, game)``,
    from its shapes alone: running the initialisers eagerly compiles each of their ops
    (seconds per agent read, the bulk of an evaluate job's start)."""
    shapes = jax.eval_shape(lambda k: init_params(network, game, k), jax.random.key(0))
    return jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def save_agent(
    path: Path | str,
    *,
    network: NetworkConfig,
    params: Any,
    game: Game,
    algorithm: str,
    seed: int | None = None,
    gamma: float | None = None,
    training: Mapping[str, Any] | None = None,
    metrics: Mapping[str, Any] | None = None,
    curve: Iterable[Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write an agent directory (see the module docstring) and return its path.

    ``params`` must have the structure and shapes of ``init_params(network,
    game, key)``; a mismatch is a ValueError here rather than at load time.
    ``training`` (e.g. the config), ``metrics`` (e.g. final exploitability)
    and ``extra`` are stored as JSON in agent.json; ``curve`` rows go to
    curve.csv.
    """
    if not isinstance(network, NetworkConfig):
        raise TypeError(
            f"save_agent: network must be a NetworkConfig, got {type(network).__name__}"
        )
    if not isinstance(algorithm, str) or not algorithm:
        raise ValueError(f"save_agent: algorithm = {algorithm!r} is not allowed; expected a name")
    path = Path(path)
    template = params_template(network, game)
    params = jax.device_get(params)
    _check_structure(
        template, flax.serialization.to_state_dict(params), "save_agent: params", saving=True
    )
    leaves = jax.tree_util.tree_leaves(params)
    if not all(np.all(np.isfinite(np.asarray(x))) for x in leaves):
        raise ValueError("save_agent: params contain NaN or inf; refusing to save them")
    weights = flax.serialization.to_bytes(params)
    description = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "algorithm": algorithm,
        "network": network.to_dict(),
        "game": {"name": game.name, "params": game.params.to_dict()},
        "num_states": game.num_states,
        "num_actions": game.num_actions,
        "obs_dim": game.obs_dim,
        "seed": seed,
        "gamma": None if gamma is None else float(gamma),
        "observation": OBSERVATION_NOTE.format(names=", ".join(game.obs_names)),
        "num_parameters": int(sum(np.size(x) for x in leaves)),
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "versions": _versions(),
        "training": _jsonable(dict(training or {})),
        "metrics": _jsonable(dict(metrics or {})),
        **_jsonable(dict(extra or {})),
    }
    path.mkdir(parents=True, exist_ok=True)
    if curve is not None:
        atomic_write(path / CURVE_FILE, curve_csv(curve))
    atomic_write(path / WEIGHTS_FILE, weights)
    atomic_write(path / DESCRIPTION_FILE, json.dumps(description, indent=2, sort_keys=False) + "\n")
    return path


def _versions() -> dict[str, str]:
    return {"mfax": __version__, "jax": jax.__version__, "flax": flax.__version__}


# --- reading ------------------------------------------------------------------------------
def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}/{k}" if prefix else str(k)))
        return out
    return {prefix: tree}


def _check_structure(template: Any, state: Any, where: str, saving: bool = False) -> None:
    described = "" if saving else f" described in {DESCRIPTION_FILE}"
    want = _flatten(flax.serialization.to_state_dict(template))
    have = _flatten(state)
    missing = sorted(set(want) - set(have))
    extra = sorted(set(have) - set(want))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if extra:
            parts.append(f"unexpected {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
        raise ValueError(
            f"{where}: the parameters do not fit the network{described} ({'; '.join(parts)})"
        )
    for name in want:
        ws, hs = np.shape(want[name]), np.shape(have[name])
        if ws != hs:
            raise ValueError(
                f"{where}: parameter {name!r} has shape {hs}, but the network "
                f"and game{described} need {ws}"
            )


def _require(desc: Mapping[str, Any], key: str, kind: type | tuple, file: Path) -> Any:
    if key not in desc:
        raise ValueError(f"{file}: missing entry {key!r}")
    value = desc[key]
    if not isinstance(value, kind) or (
        isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,))
    ):
        raise ValueError(f"{file}: entry {key!r} = {value!r} has the wrong type")
    return value


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_entry(file: Path, key: str, value: Any, ok: bool, expected: str) -> None:
    if not ok:
        if _is_number(value) and not math.isfinite(value):
            expected = f"a finite number ({expected})"
        raise ValueError(f"{file}: entry {key!r} = {value!r} is not allowed; expected {expected}")


def _check_description(
    desc: Mapping[str, Any], file: Path, game_name: str, game_params: Mapping[str, Any]
) -> None:
    """Check every entry of agent.json that is used beyond the game, sizes and network:
    algorithm, seed, gamma, weights_sha256 and the training settings (through the
    algorithm's own config class when it is one of mfax's)."""
    algorithm = _require(desc, "algorithm", str, file)
    _check_entry(file, "algorithm", algorithm, bool(algorithm.strip()), "an algorithm name")
    seed = desc.get("seed")
    _check_entry(file, "seed", seed, seed is None or _is_int(seed), "null or an integer")
    gamma = desc.get("gamma")
    _check_entry(
        file,
        "gamma",
        gamma,
        gamma is None or (_is_number(gamma) and math.isfinite(gamma) and 0.0 < gamma <= 1.0),
        "null (the game's default) or a number in (0, 1]",
    )
    sha = desc.get("weights_sha256")
    _check_entry(
        file,
        "weights_sha256",
        sha,
        sha is None or isinstance(sha, str),
        "null or a sha256 hex string",
    )
    for key in ("training", "metrics"):
        value = desc.get(key)
        _check_entry(file, key, value, value is None or isinstance(value, dict), "a mapping")
    training = desc.get("training") or {}
    for key in ("num_envs", "eval_num_envs"):
        v = training.get(key)
        _check_entry(
            file,
            f"training.{key}",
            v,
            v is None or (_is_int(v) and v >= 1),
            "null or an integer >= 1",
        )
    v = training.get("gamma")
    _check_entry(
        file,
        "training.gamma",
        v,
        v is None or (_is_number(v) and math.isfinite(v) and 0.0 < v <= 1.0),
        "null or a number in (0, 1]",
    )
    from mfax.algorithms import get_algorithm, list_algorithms

    if algorithm not in list_algorithms():  # saved by other code: a free-form training entry
        return
    config_class = get_algorithm(algorithm).config_class
    keys = set(config_class.training_keys()) - {"algo"}
    try:
        config_class(
            game=game_name,
            game_params=dict(game_params),
            algo=algorithm,
            **{k: v for k, v in training.items() if k in keys},
        )
    except (TypeError, ValueError) as e:
        raise ValueError(f"{file}: entry 'training' is invalid: {e}") from None


def read_description(path: Path | str) -> dict[str, Any]:
    """Read and check agent.json of an agent directory (format and version)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"agent directory {str(path)!r} does not exist")
    if not path.is_dir():
        raise ValueError(
            f"{path}: an agent is a directory (with {DESCRIPTION_FILE} and "
            f"{WEIGHTS_FILE}), not a file"
        )
    file = path / DESCRIPTION_FILE
    if not file.exists():
        raise FileNotFoundError(
            f"{file}: missing; {path} is not an mfax agent directory "
            "(or it was not completely written)"
        )
    desc = read_json_description(file, FORMAT_NAME, "mfax agent description")
    version = desc.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{file}: 'format_version' = {version!r} is not an integer")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{file}: format_version {version} was written by a newer mfax "
            f"({desc.get('versions', {}).get('mfax', '?')}); this mfax "
            f"({_versions()['mfax']}) reads format versions up to {FORMAT_VERSION}"
        )
    if version == 1:
        raise ValueError(
            f"{file}: format_version 1 was written with mfax's former network "
            "layout, whose weights do not fit today's network (docs/LEARNING.md); "
            "retrain the agent"
        )
    if version < 1:
        raise ValueError(
            f"{file}: format_version {version} is not supported (expected {FORMAT_VERSION})"
        )
    return desc


def load_agent(path: Path | str) -> Agent:
    """Rebuild a saved agent as a `MeanFieldPolicy` (with ``.game`` and ``.description``).

    Missing, truncated, mismatched or incompatible files raise FileNotFoundError
    or ValueError naming the file and the problem.
    """
    path = Path(path)
    desc = read_description(path)
    file = path / DESCRIPTION_FILE
    game_desc = _require(desc, "game", dict, file)
    name = _require(game_desc, "name", str, file)
    game_params = _require(game_desc, "params", dict, file)
    try:
        game = make_game(name, **game_params)
    except ValueError as e:
        raise ValueError(f"{file}: the game cannot be rebuilt: {e}") from None
    _check_description(desc, file, name, game_params)
    for key in ("num_states", "num_actions", "obs_dim"):
        stored = _require(desc, key, int, file)
        actual = getattr(game, key)
        if stored != actual:
            raise ValueError(
                f"{file}: {key} = {stored} but game {name!r} with the stored "
                f"parameters has {key} = {actual} (game definition changed?)"
            )
    try:
        network = NetworkConfig.from_dict(_require(desc, "network", dict, file))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{file}: invalid network description: {e}") from None

    wfile = path / WEIGHTS_FILE
    if not wfile.exists():
        raise FileNotFoundError(f"{wfile}: missing (the weights of the agent in {path})")
    data = wfile.read_bytes()
    sha = desc.get("weights_sha256")
    if sha is not None and hashlib.sha256(data).hexdigest() != sha:
        raise ValueError(
            f"{wfile}: contents do not match the sha256 recorded in "
            f"{DESCRIPTION_FILE} (truncated, corrupt or from another agent; "
            f"{len(data)} bytes)"
        )
    try:
        state = flax.serialization.msgpack_restore(data)
    except Exception as e:  # msgpack raises several types; all mean "unreadable"
        raise ValueError(
            f"{wfile}: cannot be read as msgpack (truncated or corrupt): {type(e).__name__}: {e}"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{wfile}: expected a mapping of parameters, got {type(state).__name__}")
    try:
        template = params_template(network, game)
    except ValueError as e:
        raise ValueError(f"{file}: the network does not fit the game: {e}") from None
    _check_structure(template, state, str(wfile))
    state = jax.tree_util.tree_map(
        lambda t, v: np.asarray(v, dtype=np.asarray(t).dtype),
        flax.serialization.to_state_dict(template),
        state,
    )
    params = flax.serialization.from_state_dict(template, state)
    params = jax.tree_util.tree_map(jax.numpy.asarray, params)
    return Agent(
        apply=NetworkApply(network, game),
        params=params,
        initial_carry=initial_carry_fn(network),
        game=game,
        network=network,
        description=desc,
        path=str(path),
    )


__all__ = [
    "Agent",
    "CURVE_FILE",
    "DESCRIPTION_FILE",
    "FORMAT_VERSION",
    "WEIGHTS_FILE",
    "atomic_write",
    "load_agent",
    "read_curve",
    "read_description",
    "save_agent",
]
