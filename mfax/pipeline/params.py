"""Params: ``params/`` -> the grid of runs and each run's resolved training config.

``params/params.yaml`` names the preset, the grid (games, algorithms,
seeds), an optional hyper-parameter sweep, the evaluation settings and
overrides; ``params/presets/<preset>.yaml`` holds the compute budget of a
preset.  Every reader goes through `mfax.io` (``1e-3`` is a number):
the Snakefile builds its `Pipeline` with `Pipeline.from_snakemake` (not a
``configfile:``, whose YAML 1.1 reader takes ``1e-3`` for a string);
``dvc.yaml`` is generated from the same files by `mfax.pipeline.dvc`
(``mfax dvc-yaml``) and checked in, and a test keeps it up to date.

The runs of the grid and their files are defined in `mfax.pipeline.runs`.

Config layering, later wins (each layer holds training keys plus an optional
``game:`` mapping of game parameters, the format of ``mfax train --config``):
preset ``defaults``, ``algos[algo]``, ``games[game]``, ``pairs[game][algo]``,
then the same four sections of ``params.yaml``, then the sweep setting, then
``seeds`` from the grid.

Loading params checks everything before any job runs: run names (a strict
character set, `SAFE_NAME`, and unique), ``nan``/``inf`` anywhere, and every
run's resolved training config through the trainer's own config class; errors
are `ParamsError` naming the file, the section and the key.

This module is the configure stage's code (``mfax configure``, `write_config`):
see `mfax.pipeline.code.CODE_DEPS`.  It is longer than most (about 490 lines)
because checking and resolving share one thing, the order of the config layers
(`Pipeline.layers`, `Pipeline.origins`): an error names the layer that resolution
would use, so both stay in one class.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mfax import io as mfax_io
from mfax.pipeline.runs import MAX_NAME, SAFE_NAME, SAFE_PIECE, Run, format_value

PARAMS_FILE = "params/params.yaml"
PRESETS_DIR = "presets"  # relative to the params file's folder
LAYER_SECTIONS = ("defaults", "algos", "games", "pairs")
TOP_KEYS = {
    "preset": "the preset name: a file params/presets/<preset>.yaml",
    "grid": "the grid: games, algos, seeds",
    "sweep": "a mapping training key -> list of values (every combination is a run)",
    "evaluation": "evaluation settings: num_envs, seed, episodes",
    "defaults": "training overrides for every pair",
    "algos": "training overrides per algorithm",
    "games": "training overrides per game",
    "pairs": "training overrides per game and algorithm",
}
EVALUATION_DEFAULTS = {"num_envs": 32, "seed": 2024, "episodes": 4}


class ParamsError(ValueError):
    """A problem in params/: the message names the file, the field and what is allowed."""


def check_run_piece(where: str, field: str, value: Any, piece: str) -> None:
    """A sweep key or value whose text (``piece``) may not appear in a run name is a `ParamsError`."""
    if not SAFE_PIECE.fullmatch(piece) or piece in (".", ".."):
        raise ParamsError(
            f"{where}: {field}: {value!r} cannot be part of a run name ({piece!r}); run names "
            "become folder names and command arguments, so sweep keys and values may only use "
            "letters, digits and . _ + - (e.g. lr: [0.001, 0.01], hidden: [[64, 64]])"
        )


# ------------------------------------------------------------------------- params
def _fail(where: str, field: str, value: Any, allowed: str) -> None:
    raise ParamsError(f"{where}: {field} = {value!r} is not allowed; expected {allowed}")


def _check_finite(where: str, field: str, value: Any) -> None:
    """``nan`` and ``inf`` (``.nan``, ``-.inf``) anywhere in params/ are errors."""
    if isinstance(value, dict):
        for k, v in value.items():
            _check_finite(where, f"{field}.{k}" if field else str(k), v)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_finite(where, f"{field}[{i}]", v)
    elif isinstance(value, float) and not np.isfinite(value):
        _fail(where, field, value, "a finite number")


def _mapping(where: str, field: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(where, field, value, "a mapping (key: value)")
    return value


def read_yaml(path: str | os.PathLike, what: str = "params file") -> dict:
    """A params or preset file through mfax's one reader (`mfax.io`: ``1e-3`` is a number)."""
    path = Path(path)
    try:
        data = mfax_io.read_yaml(path, what)
    except ValueError as err:
        raise ParamsError(str(err)) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _reparse(value: Any) -> Any:
    """Values from ``snakemake --config`` (Snakemake parses them as int, float, or YAML with
    every nested value a string) read as mfax reads them: ``1e-3`` -> 0.001, ``'4'`` -> 4."""
    if isinstance(value, dict):
        return {k: _reparse(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_reparse(v) for v in value]
    if isinstance(value, str):
        try:
            parsed = mfax_io.parse_value(value)
        except yaml.YAMLError:
            return value
        return parsed if parsed is None or isinstance(parsed, (bool, int, float)) else value
    return value


def deep_merge(base: dict, update: dict) -> dict:
    """Recursive dict merge (``update`` wins); neither input is modified."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _known_algorithms() -> list[str] | None:
    """The trainers' algorithm names (data-driven: the grid accepts whatever they offer)."""
    from mfax.algorithms import list_algorithms

    return list_algorithms()


@dataclasses.dataclass
class Pipeline:
    """The parsed ``params/``: the grid of runs and each run's resolved config."""

    params: dict
    preset: dict
    root: Path
    where: str = PARAMS_FILE
    #: the preset file as named in messages (``params/presets/<preset>.yaml``)
    preset_where: str = "preset"

    # -- construction --------------------------------------------------------
    @classmethod
    def load(
        cls,
        params_file: str | os.PathLike = PARAMS_FILE,
        root: str | os.PathLike = ".",
        overrides: dict | None = None,
    ) -> Pipeline:
        root = Path(root)
        path = Path(params_file)
        path = path if path.is_absolute() else root / path
        params = deep_merge(read_yaml(path), overrides or {})
        return cls.from_config(params, root, params_dir=path.parent, where=str(params_file))

    @classmethod
    def from_config(
        cls,
        params: dict,
        root: str | os.PathLike = ".",
        params_dir: str | os.PathLike | None = None,
        where: str = PARAMS_FILE,
    ) -> Pipeline:
        """From an already-read params mapping (read with `read_yaml`; Snakemake uses
        `from_snakemake`)."""
        root = Path(root)
        params_dir = Path(params_dir) if params_dir is not None else root / Path(PARAMS_FILE).parent
        params = copy.deepcopy(dict(params))
        for key in params:
            if key not in TOP_KEYS:
                _fail(where, "top-level key " + repr(key), key, "one of " + ", ".join(TOP_KEYS))
        preset_name = params.get("preset", "quick")
        if not isinstance(preset_name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", preset_name):
            _fail(where, "preset", preset_name, "a preset name such as quick or paper")
        preset_file = params_dir / PRESETS_DIR / f"{preset_name}.yaml"
        if not preset_file.exists():
            names = sorted(p.stem for p in (params_dir / PRESETS_DIR).glob("*.yaml"))
            _fail(where, "preset", preset_name, "one of " + ", ".join(names))
        preset_where = (
            str(Path(where).parent / PRESETS_DIR / f"{preset_name}.yaml")
            if not Path(where).is_absolute()
            else str(preset_file)
        )
        preset = read_yaml(preset_file, "preset file")
        for key in preset:
            if key not in LAYER_SECTIONS:
                _fail(
                    preset_where,
                    "top-level key " + repr(key),
                    key,
                    "one of " + ", ".join(LAYER_SECTIONS),
                )
        pipe = cls(params=params, preset=preset, root=root, where=where, preset_where=preset_where)
        pipe._validate()
        pipe._validate_runs()
        return pipe

    @classmethod
    def from_snakemake(
        cls,
        root: str | os.PathLike,
        configfiles: Iterable[str | os.PathLike] = (),
        cli_config: dict | None = None,
    ) -> Pipeline:
        """The Snakefile's pipeline: ``params/params.yaml`` read by mfax's reader (not
        Snakemake's YAML 1.1 ``configfile:``, which reads ``1e-3`` as a string), then any
        ``--configfile`` files, then ``--config key=value`` overrides (``--config preset=paper``)."""
        root = Path(root)
        params = read_yaml(root / PARAMS_FILE)
        for f in configfiles:
            params = deep_merge(params, read_yaml(f, "config file"))
        return cls.from_config(deep_merge(params, _reparse(dict(cli_config or {}))), root)

    # -- validation ----------------------------------------------------------
    def _validate(self) -> None:
        w = self.where
        for source, data in ((self.preset_where, self.preset), (w, self.params)):
            _check_finite(source, "", data)
        grid = _mapping(w, "grid", self.params.get("grid"))
        for key in grid:
            if key not in ("games", "algos", "seeds"):
                _fail(w, f"grid.{key}", grid[key], "only grid.games, grid.algos, grid.seeds")
        games, algos = grid.get("games"), grid.get("algos")
        for field, value in (("grid.games", games), ("grid.algos", algos)):
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
                or len(set(value)) != len(value)
            ):
                _fail(w, field, value, "a non-empty list of distinct names")
        from mfax.games import canonical_name

        for g in games:
            try:
                if canonical_name(g) != g:
                    _fail(w, "grid.games", g, f"the canonical name {canonical_name(g)!r}")
            except ValueError as err:
                raise ParamsError(f"{w}: grid.games: {err}") from None
        known = _known_algorithms()
        for a in algos:
            if known is not None and a not in known:
                _fail(w, "grid.algos", a, "one of " + ", ".join(known))
            if not re.fullmatch(r"[A-Za-z0-9_]+", a):
                _fail(w, "grid.algos", a, "a name of letters, digits and _")
        seeds = grid.get("seeds", [0])
        if (
            not isinstance(seeds, list)
            or not seeds
            or len(set(map(str, seeds))) != len(seeds)
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
        ):
            _fail(w, "grid.seeds", seeds, "a non-empty list of distinct integers >= 0")
        sweep = _mapping(w, "sweep", self.params.get("sweep"))
        for key, values in sweep.items():
            if not isinstance(values, list) or not values:
                _fail(w, f"sweep.{key}", values, "a non-empty list of values")
            if key in ("game", "seeds", "seed"):
                _fail(w, "sweep", key, "a training key (sweep seeds with grid.seeds)")
            check_run_piece(w, "sweep key", key, str(key))
            for value in values:
                check_run_piece(w, f"sweep.{key}", value, format_value(value))
        ev = _mapping(w, "evaluation", self.params.get("evaluation"))
        for key, value in ev.items():
            if key not in EVALUATION_DEFAULTS:
                _fail(w, f"evaluation.{key}", value, "one of " + ", ".join(EVALUATION_DEFAULTS))
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < (0 if key == "seed" else 1)
            ):
                _fail(
                    w,
                    f"evaluation.{key}",
                    value,
                    "an integer >= 0" if key == "seed" else "an integer >= 1",
                )
        for source, data in (("preset", self.preset), (w, self.params)):
            for section in LAYER_SECTIONS:
                value = _mapping(source, section, data.get(section))
                if section in ("algos", "games", "pairs"):
                    for k, v in value.items():
                        _mapping(source, f"{section}.{k}", v)
                        if section == "pairs":
                            for a, layer in v.items():
                                _mapping(source, f"pairs.{k}.{a}", layer)
        for source, section, layer in self._all_layers():
            if "seeds" in layer:
                _fail(
                    source,
                    f"{section}.seeds",
                    layer["seeds"],
                    "seeds only in grid.seeds (every run trains all of them)",
                )

    def _all_layers(self) -> list[tuple[str, str, dict]]:
        """Every config layer: (file, section, mapping)."""
        out = []
        for source, data in ((self.preset_where, self.preset), (self.where, self.params)):
            out.append((source, "defaults", data.get("defaults") or {}))
            for section in ("algos", "games"):
                for k, layer in (data.get(section) or {}).items():
                    out.append((source, f"{section}.{k}", layer or {}))
            for g, per_algo in (data.get("pairs") or {}).items():
                for a, layer in (per_algo or {}).items():
                    out.append((source, f"pairs.{g}.{a}", layer or {}))
        return out

    def _validate_runs(self) -> None:
        """Run names (unique, safe as folder names and command words) and every run's
        resolved training config, checked by the trainer's own config class now, so that
        ``snakemake -n``, ``mfax configure`` and ``mfax dvc-yaml`` fail before any job runs."""
        w = self.where
        names: dict[str, Run] = {}
        keys: dict[str, Run] = {}
        for run in self.runs():
            name = run.name
            if not SAFE_NAME.fullmatch(name) or len(name) > MAX_NAME:
                raise ParamsError(
                    f"{w}: sweep: the run name {name!r} is not allowed; expected at "
                    f"most {MAX_NAME} letters, digits and . _ = + - (fewer or "
                    "shorter sweep values)"
                )
            for seen, value in ((names, run.id), (keys, run.key)):
                other = seen.setdefault(value, run)
                if other is not run:
                    raise ParamsError(
                        f"{w}: sweep: the settings {dict(other.setting)!r} and "
                        f"{dict(run.setting)!r} give the same run name {value!r}; make the sweep "
                        "values distinct as text"
                    )
        known = _known_algorithms()
        if known is None:
            return
        for run in self.runs():
            self.check_config(run)

    def origins(self, run: Run) -> dict[str, tuple[str, str]]:
        """Where each key of a run's resolved config comes from: key (``game.<param>`` for
        game parameters) -> (file, section) of the layer that wins."""
        out: dict[str, tuple[str, str]] = {}
        labels = []
        for source in (self.preset_where, self.where):
            labels += [
                (source, "defaults"),
                (source, f"algos.{run.algo}"),
                (source, f"games.{run.game}"),
                (source, f"pairs.{run.game}.{run.algo}"),
            ]
        for (source, section), layer in zip(labels, self.layers(run)):
            for key, value in layer.items():
                if key == "game" and isinstance(value, dict):
                    for p in value:
                        out[f"game.{p}"] = (source, f"{section}.game")
                out[str(key)] = (source, section)
        for key, _ in run.setting:
            out[str(key)] = (self.where, "sweep")
        return out

    def check_config(self, run: Run):
        """The run's resolved config as the trainer's config object; a bad key or value is
        a `ParamsError` naming the file, the section and the key."""
        from mfax.algorithms import get_algorithm

        mapping = {k: v for k, v in self.train_config(run).items() if k != "seeds"}
        try:
            config_class = get_algorithm(run.algo).config_class
            return config_class.from_mapping(
                mapping, game=run.game, algo=run.algo, source=f"training config of {run.id}"
            )
        except ValueError as err:
            raise ParamsError(self._locate(run, str(err))) from None

    def _locate(self, run: Run, message: str) -> str:
        origins = self.origins(run)
        for word in re.findall(r"'([^']*)'", message):
            for key in (word, f"game.{word}"):
                if key in origins:
                    source, section = origins[key]
                    field = f"{section}.{key.split('.')[-1]}"
                    return f"{source}: {field}: {message}"
        return f"{self.where}: training config of {run.id}: {message}"

    # -- the grid ------------------------------------------------------------
    @property
    def games(self) -> list[str]:
        return list(self.params["grid"]["games"])

    @property
    def algos(self) -> list[str]:
        return list(self.params["grid"]["algos"])

    @property
    def seeds(self) -> list[int]:
        return list(self.params["grid"].get("seeds", [0]))

    @property
    def evaluation(self) -> dict:
        return {**EVALUATION_DEFAULTS, **(self.params.get("evaluation") or {})}

    @property
    def settings(self) -> list[tuple[tuple[str, Any], ...]]:
        sweep = self.params.get("sweep") or {}
        keys = sorted(sweep)
        return [tuple(zip(keys, combo)) for combo in itertools.product(*(sweep[k] for k in keys))]

    def runs(self) -> list[Run]:
        return [Run(g, a, s) for g in self.games for a in self.algos for s in self.settings]

    def run(self, game: str, name: str) -> Run:
        for r in self.runs():
            if r.game == game and r.name == name:
                return r
        raise ParamsError(
            f"{self.where}: no run {game}/{name} in the grid; runs: "
            + ", ".join(r.id for r in self.runs())
        )

    # -- configs -------------------------------------------------------------
    def layers(self, run: Run) -> list[dict]:
        out = []
        for data in (self.preset, self.params):
            out.append(data.get("defaults") or {})
            out.append((data.get("algos") or {}).get(run.algo) or {})
            out.append((data.get("games") or {}).get(run.game) or {})
            out.append(((data.get("pairs") or {}).get(run.game) or {}).get(run.algo) or {})
        return out

    def train_config(self, run: Run) -> dict:
        """The resolved ``mfax train --config`` mapping of a run (training keys + ``game:``)."""
        cfg: dict = {}
        for layer in self.layers(run):
            cfg = deep_merge(cfg, layer)
        cfg = deep_merge(cfg, dict(run.setting))
        cfg["seeds"] = self.seeds
        if "game" in cfg and not isinstance(cfg["game"], dict):
            _fail(self.where, f"game parameters of {run.id}", cfg["game"], "a mapping")
        return cfg

    def check_game(self, run: Run) -> None:
        """Check the run's game parameters (and sizes) so a bad one fails before training;
        no JAX (`mfax.games.make_params`)."""
        from mfax.games import make_params

        try:
            make_params(run.game, **(self.train_config(run).get("game") or {}))
        except ValueError as err:
            raise ParamsError(self._locate(run, f"game parameters of {run.id}: {err}")) from None


def config_text(cfg: dict) -> str:
    return "# Generated from params/ by mfax (pipeline configure); do not edit.\n" + yaml.safe_dump(
        cfg, sort_keys=True, default_flow_style=None
    )


def write_config(pipe: Pipeline, run: Run, path: str | os.PathLike | None = None) -> Path:
    """Write a run's resolved config (only if its content changes, keeping mtimes stable)."""
    pipe.check_game(run)
    path = Path(path) if path is not None else pipe.root / run.config
    text = config_text(pipe.train_config(run))
    if path.exists() and path.read_text() == text:
        return path
    mfax_io.atomic_write(path, text)
    return path
