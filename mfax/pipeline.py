"""The pipeline's single source of truth: ``params/`` -> the grid of runs and their configs.

``params/params.yaml`` names the preset, the grid (games, algorithms,
seeds), an optional hyper-parameter sweep, the evaluation settings and
overrides; ``params/presets/<preset>.yaml`` holds the compute budget of a
preset.  Every reader goes through `mfax.userio` (``1e-3`` is a number):
the Snakefile builds its `Pipeline` with `Pipeline.from_snakemake` (not a
``configfile:``, whose YAML 1.1 reader takes ``1e-3`` for a string);
``dvc.yaml`` is generated from the same files by `dvc_yaml` (``mfax
dvc-yaml``) and checked in, and a test keeps it up to date.

A *run* is one (game, algorithm, sweep setting) of the grid; without a
sweep its name is the algorithm's (``spg``), with one it carries the setting
(``spg-lr=0.001``).  Its files::

    data/<game>/<run>/config.yaml      resolved training config (`mfax train --config`)
    models/<game>/<run>/               agent: weights.msgpack, agent.json, training curve
    data/<game>/<run>/trajectory.nc    evaluated mean-field trajectory (xarray / NetCDF)
    reports/<game>/<run>/metrics.json  DVC metrics
    reports/<game>/<run>/curve.csv     training curve (DVC plots)
    reports/<game>/<run>/report.html   human report (+ figures/*.png)
    reports/summary.{md,csv,png}       one table and one comparison plot over all runs

Config layering, later wins (each layer holds training keys plus an optional
``game:`` mapping of game parameters, the format of ``mfax train --config``):
preset ``defaults``, ``algos[algo]``, ``games[game]``, ``pairs[game][algo]``,
then the same four sections of ``params.yaml``, then the sweep setting, then
``seeds`` from the grid.

Loading params checks everything before any job runs: run names (a strict
character set, `SAFE_NAME`, and unique), ``nan``/``inf`` anywhere, and every
run's resolved training config through the trainer's own config class; errors
are `ParamsError` naming the file, the section and the key.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import itertools
import json
import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from mfax import userio

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

#: Code each stage depends on (files or folders, relative to the repository root).
#: Snakemake hashes their content into the rule's params; dvc.yaml lists them as deps.
#: Report code is deliberately absent from train/evaluate, so restyling reports
#: reruns the report stages only.
CODE_DEPS = {
    "configure": ["mfax/pipeline.py"],
    "train": ["mfax/games", "mfax/training", "mfax/rl", "mfax/dynamics.py",
              "mfax/evaluation.py", "mfax/policies.py", "mfax/networks.py", "mfax/agents.py",
              "mfax/multiseed.py"],
    "evaluate": ["mfax/games", "mfax/dynamics.py", "mfax/evaluation.py", "mfax/policies.py",
                 "mfax/networks.py", "mfax/agents.py", "mfax/multiseed.py", "mfax/netcdf.py",
                 "mfax/pipeline.py"],
    "report": ["mfax/reports.py"],
    "summary": ["mfax/reports.py"],
}


class ParamsError(ValueError):
    """A problem in params/: the message names the file, the field and what is allowed."""


# --------------------------------------------------------------------------- runs
@dataclasses.dataclass(frozen=True)
class Run:
    game: str
    algo: str
    setting: tuple[tuple[str, Any], ...] = ()  # sweep values of this run

    @property
    def name(self) -> str:
        return self.algo + "".join(f"-{k}={format_value(v)}" for k, v in self.setting)

    @property
    def key(self) -> str:
        """DVC ``foreach`` key (letters, digits, ``_`` and ``-`` only)."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", f"{self.game}-{self.name}")

    @property
    def id(self) -> str:
        return f"{self.game}/{self.name}"

    # the files of a run
    @property
    def config(self) -> str:
        return f"data/{self.game}/{self.name}/config.yaml"

    @property
    def model(self) -> str:
        return f"models/{self.game}/{self.name}"

    @property
    def trajectory(self) -> str:
        return f"data/{self.game}/{self.name}/trajectory.nc"

    @property
    def metrics(self) -> str:
        return f"reports/{self.game}/{self.name}/metrics.json"

    @property
    def curve(self) -> str:
        return f"reports/{self.game}/{self.name}/curve.csv"

    @property
    def report(self) -> str:
        return f"reports/{self.game}/{self.name}/report.html"

    @property
    def figures(self) -> str:
        return f"reports/{self.game}/{self.name}/figures"


#: the files of one seed's agent (mfax.agents)
AGENT_FILES = ("weights.msgpack", "agent.json", "curve.csv")
SUMMARY_OUTPUTS = ("reports/summary.md", "reports/summary.csv", "reports/summary.png")


def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "x".join(format_value(x) for x in v)
    return str(v)


#: one piece of a run name (the algorithm, a sweep key, a formatted sweep value): run names
#: become folder names under data/, models/ and reports/ and words of the stages' commands,
#: so only these characters are allowed (no spaces, quotes, slashes, ``$``, ``;``, ``*``, ...)
SAFE_PIECE = re.compile(r"[A-Za-z0-9._+-]+")
SAFE_NAME = re.compile(r"[A-Za-z0-9._=+-]+")
MAX_NAME = 200  # file systems allow 255 bytes per name


def check_run_piece(where: str, field: str, value: Any, piece: str) -> None:
    """A sweep key or value whose text (``piece``) may not appear in a run name is a `ParamsError`."""
    if not SAFE_PIECE.fullmatch(piece) or piece in (".", ".."):
        raise ParamsError(
            f"{where}: {field}: {value!r} cannot be part of a run name ({piece!r}); run names "
            "become folder names and command arguments, so sweep keys and values may only use "
            "letters, digits and . _ + - (e.g. lr: [0.001, 0.01], hidden: [[64, 64]])")


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
    """A params or preset file through mfax's one reader (`mfax.userio`: ``1e-3`` is a number)."""
    path = Path(path)
    try:
        data = userio.read_yaml(path, what)
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
            parsed = userio.parse_value(value)
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
    try:
        from mfax.multiseed import known_algorithms  # noqa: PLC0415
    except ImportError:  # a trainer is missing: let `mfax train-seeds` report it
        return None
    return known_algorithms()


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
    def load(cls, params_file: str | os.PathLike = PARAMS_FILE, root: str | os.PathLike = ".",
             overrides: dict | None = None) -> "Pipeline":
        root = Path(root)
        path = Path(params_file)
        path = path if path.is_absolute() else root / path
        params = deep_merge(read_yaml(path), overrides or {})
        return cls.from_config(params, root, params_dir=path.parent, where=str(params_file))

    @classmethod
    def from_config(cls, params: dict, root: str | os.PathLike = ".",
                    params_dir: str | os.PathLike | None = None,
                    where: str = PARAMS_FILE) -> "Pipeline":
        """From an already-read params mapping (read with `read_yaml`; Snakemake uses
        `from_snakemake`)."""
        root = Path(root)
        params_dir = Path(params_dir) if params_dir is not None else root / Path(PARAMS_FILE).parent
        params = copy.deepcopy(dict(params))
        for key in params:
            if key not in TOP_KEYS:
                _fail(where, "top-level key " + repr(key), key,
                      "one of " + ", ".join(TOP_KEYS))
        preset_name = params.get("preset", "quick")
        if not isinstance(preset_name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", preset_name):
            _fail(where, "preset", preset_name, "a preset name such as quick or paper")
        preset_file = params_dir / PRESETS_DIR / f"{preset_name}.yaml"
        if not preset_file.exists():
            names = sorted(p.stem for p in (params_dir / PRESETS_DIR).glob("*.yaml"))
            _fail(where, "preset", preset_name, "one of " + ", ".join(names))
        preset_where = str(Path(where).parent / PRESETS_DIR / f"{preset_name}.yaml") \
            if not Path(where).is_absolute() else str(preset_file)
        preset = read_yaml(preset_file, "preset file")
        for key in preset:
            if key not in LAYER_SECTIONS:
                _fail(preset_where, "top-level key " + repr(key), key,
                      "one of " + ", ".join(LAYER_SECTIONS))
        pipe = cls(params=params, preset=preset, root=root, where=where, preset_where=preset_where)
        pipe._validate()
        pipe._validate_runs()
        return pipe

    @classmethod
    def from_snakemake(cls, root: str | os.PathLike, configfiles: Iterable[str | os.PathLike] = (),
                       cli_config: dict | None = None) -> "Pipeline":
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
            if not isinstance(value, list) or not value or \
                    not all(isinstance(v, str) for v in value) or len(set(value)) != len(value):
                _fail(w, field, value, "a non-empty list of distinct names")
        from mfax.games import canonical_name  # noqa: PLC0415  (no JAX work at import)

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
        if not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds) or \
                not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
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
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if key == "seed" else 1):
                _fail(w, f"evaluation.{key}", value,
                      "an integer >= 0" if key == "seed" else "an integer >= 1")
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
                _fail(source, f"{section}.seeds", layer["seeds"],
                      "seeds only in grid.seeds (every run trains all of them)")

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
                raise ParamsError(f"{w}: sweep: the run name {name!r} is not allowed; expected at "
                                  f"most {MAX_NAME} letters, digits and . _ = + - (fewer or "
                                  "shorter sweep values)")
            for seen, value in ((names, run.id), (keys, run.key)):
                other = seen.setdefault(value, run)
                if other is not run:
                    raise ParamsError(
                        f"{w}: sweep: the settings {dict(other.setting)!r} and "
                        f"{dict(run.setting)!r} give the same run name {value!r}; make the sweep "
                        "values distinct as text")
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
        for source, data in ((self.preset_where, self.preset), (self.where, self.params)):
            labels += [(source, "defaults"), (source, f"algos.{run.algo}"),
                       (source, f"games.{run.game}"), (source, f"pairs.{run.game}.{run.algo}")]
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
        from mfax.multiseed import trainer_for  # noqa: PLC0415

        mapping = {k: v for k, v in self.train_config(run).items() if k != "seeds"}
        try:
            config_class = trainer_for(run.algo)[0]
            return config_class.from_mapping(mapping, game=run.game, algo=run.algo,
                                             source=f"training config of {run.id}")
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
        raise ParamsError(f"{self.where}: no run {game}/{name} in the grid; runs: "
                          + ", ".join(r.id for r in self.runs()))

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
        """Build the run's game once so a bad game parameter fails before training."""
        from mfax.games import make_game  # noqa: PLC0415

        try:
            make_game(run.game, **(self.train_config(run).get("game") or {}))
        except ValueError as err:
            raise ParamsError(self._locate(run, f"game parameters of {run.id}: {err}")) from None


def config_text(cfg: dict) -> str:
    return "# Generated from params/ by mfax (pipeline configure); do not edit.\n" + \
        yaml.safe_dump(cfg, sort_keys=True, default_flow_style=None)


def write_config(pipe: Pipeline, run: Run, path: str | os.PathLike | None = None) -> Path:
    """Write a run's resolved config (only if its content changes, keeping mtimes stable)."""
    pipe.check_game(run)
    path = Path(path) if path is not None else pipe.root / run.config
    text = config_text(pipe.train_config(run))
    if path.exists() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def staging_dir(out: str | os.PathLike) -> Path:
    """A new empty folder next to ``out`` to write its replacement into (then `replace_dir`).

    Made before any work starts, so an output that is an existing file or lies in an
    unwritable place fails at once (`ValueError`), not after training.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is an existing file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as err:
        raise ValueError(f"cannot write the output folder {str(out)!r}: {err.strerror}") from None
    os.chmod(staged, 0o755)  # mkdtemp makes 0700 folders; models are shared artefacts
    return staged


def replace_dir(staged: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Put the finished folder ``staged`` in place of ``out`` (whatever ``out`` held before,
    e.g. the seeds of an older grid, is removed), by renames in the same folder: at no
    moment does ``out`` hold a mix of old and new files."""
    staged, out = Path(staged), Path(out)
    old = None
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.rename(out, old)
    os.rename(staged, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def remove_outputs(*paths: str | os.PathLike) -> list[str]:
    """Remove files or folders (stale outputs); returns those that existed."""
    removed = []
    for p in map(Path, paths):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        removed.append(str(p))
    return removed


# --------------------------------------------------------------------------- code
def code_files(root: str | os.PathLike, deps: Iterable[str]) -> list[Path]:
    root = Path(root)
    files: list[Path] = []
    for dep in deps:
        p = root / dep
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*.py") if "__pycache__" not in f.parts))
        elif p.exists():
            files.append(p)
    return files


def code_hash(root: str | os.PathLike, stage: str) -> str:
    """Content hash of a stage's code (Snakemake reruns a rule when its params change)."""
    h = hashlib.sha256()
    for f in code_files(root, CODE_DEPS[stage]):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------- dvc.yaml
DVC_HEADER = """\
# Generated by `mfax dvc-yaml` from params/ (the grid) and mfax/pipeline.py (the
# stage layout). Do not edit by hand: edit params/ and rerun `mfax dvc-yaml`;
# tests/test_pipeline.py checks that this file is up to date.
"""


def _deps(root: Path, stage: str) -> list[str]:
    """Code deps that exist (DVC refuses missing deps; new files need a regeneration)."""
    return [d for d in CODE_DEPS[stage] if (root / d).exists()]


def command(*words: str) -> str:
    """A shell command line with every word quoted (`shlex.quote`): no path or value from
    params/ can reach a shell as anything but one argument.  DVC substitutes ``${...}``
    inside the quotes, before the shell sees the line."""
    return " ".join(shlex.quote(str(w)) for w in words)


def dvc_stages(pipe: Pipeline) -> dict:
    runs = pipe.runs()
    items = {r.key: {"game": r.game, "algo": r.algo, "run": r.name} for r in runs}
    params_file = pipe.where
    pd = "${item.game}/${item.run}"
    stages: dict = {
        "configure": {
            "cmd": command("mfax", "configure", "--params", params_file),
            "deps": [str(Path(params_file).parent / PRESETS_DIR)] + _deps(pipe.root, "configure"),
            "params": [{params_file: None}],
            "outs": [r.config for r in runs],
        },
        "train": {
            "foreach": items,
            "do": {
                "cmd": command("mfax", "train-seeds", "--game", "${item.game}",
                               "--algo", "${item.algo}", "--config", f"data/{pd}/config.yaml",
                               "--out", f"models/{pd}", "--no-progress"),
                "deps": [f"data/{pd}/config.yaml"] + _deps(pipe.root, "train"),
                "outs": [f"models/{pd}"],
            },
        },
        "evaluate": {
            "foreach": items,
            "do": {
                "cmd": command("mfax", "evaluate-pair", "--agent", f"models/{pd}",
                               "--num-envs", "${evaluation.num_envs}",
                               "--seed", "${evaluation.seed}",
                               "--episodes", "${evaluation.episodes}",
                               "--metrics", f"reports/{pd}/metrics.json",
                               "--curve", f"reports/{pd}/curve.csv",
                               "--trajectory", f"data/{pd}/trajectory.nc",
                               "--report", f"reports/{pd}/report.html"),
                "deps": [f"models/{pd}"] + _deps(pipe.root, "evaluate"),
                "params": [{params_file: ["evaluation"]}],
                "outs": [f"data/{pd}/trajectory.nc"],
                "metrics": [{f"reports/{pd}/metrics.json": {"cache": False}}],
                "plots": [{f"reports/{pd}/curve.csv": {
                    "cache": False, "x": "iteration", "y": "exploitability"}}],
            },
        },
        "report": {
            "foreach": items,
            "do": {
                "cmd": command("mfax", "report", "--metrics", f"reports/{pd}/metrics.json",
                               "--curve", f"reports/{pd}/curve.csv",
                               "--trajectory", f"data/{pd}/trajectory.nc",
                               "--out", f"reports/{pd}/report.html"),
                "deps": [f"reports/{pd}/metrics.json", f"reports/{pd}/curve.csv",
                         f"data/{pd}/trajectory.nc"] + _deps(pipe.root, "report"),
                "outs": [f"reports/{pd}/report.html", f"reports/{pd}/figures"],
            },
        },
        "summary": {
            "cmd": command("mfax", "summary", "--out", "reports/summary.md",
                           *(r.metrics for r in runs)),
            "deps": [p for r in runs for p in (r.metrics, r.curve)] + _deps(pipe.root, "summary"),
            "outs": list(SUMMARY_OUTPUTS),
        },
    }
    return stages


def dvc_yaml(pipe: Pipeline) -> str:
    """The text of ``dvc.yaml`` for this grid (deterministic)."""
    curves = {r.curve: "exploitability" for r in pipe.runs()}
    doc = {
        "vars": [pipe.where],
        "stages": dvc_stages(pipe),
        "plots": [
            {"exploitability_vs_iteration": {"template": "linear", "x": "iteration", "y": curves}},
            {"exploitability_vs_seconds": {"template": "linear", "x": "seconds", "y": curves}},
        ],
    }
    return DVC_HEADER + yaml.dump(doc, Dumper=_NoAliasDumper, sort_keys=False, width=100)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # write the foreach items out for every stage
        return True


def expected_outputs(pipe: Pipeline) -> set[str]:
    """Every output path of the pipeline (the same set for Snakemake and DVC)."""
    out = set(SUMMARY_OUTPUTS)
    for r in pipe.runs():
        out |= {r.config, r.model, r.trajectory, r.metrics, r.curve, r.report, r.figures}
    return out


def dumps_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


# ----------------------------------------------------------------------- evaluate
def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


#: columns of reports/<game>/<run>/curve.csv (means over seeds, with the spread of exploitability)
CURVE_COLUMNS = ("iteration", "seconds", "exploitability", "exploitability_std",
                 "exploitability_min", "exploitability_max", "policy_return",
                 "best_response_return", "exploitability_undiscounted", "seeds")


def aggregate_curves(curves: list[list[dict]]) -> list[dict]:
    """Per-seed training curves -> one curve: mean (and spread) over seeds at each evaluation."""
    rows = []
    for i in range(max((len(c) for c in curves), default=0)):
        at = [c[i] for c in curves if i < len(c)]
        expl = [r["exploitability"] for r in at if "exploitability" in r]
        row = {"iteration": int(at[0]["iteration"]), "seconds": _mean([r.get("seconds") for r in at])}
        row["exploitability"] = _mean(expl)
        row["exploitability_std"] = float(np.std(expl)) if expl else None
        row["exploitability_min"] = float(np.min(expl)) if expl else None
        row["exploitability_max"] = float(np.max(expl)) if expl else None
        for k in ("policy_return", "best_response_return", "exploitability_undiscounted"):
            row[k] = _mean([r.get(k) for r in at])
        row["seeds"] = len(at)
        rows.append(row)
    return rows


def evaluate_run(model_dir: str | os.PathLike, *, num_envs: int, seed: int, episodes: int,
                 metrics_path: str | os.PathLike, curve_path: str | os.PathLike,
                 trajectory_path: str | os.PathLike) -> dict:
    """The evaluate stage: every seed's agent on the same ``num_envs`` push-forward episodes.

    Writes ``metrics.json`` (means, spread and per-seed values, the untrained
    network's and the uniform policy's exploitability, training time), the
    seed-aggregated training ``curve.csv``, and the first seed's trajectory
    (the first ``episodes`` episodes) as NetCDF.  Returns the metrics.
    """
    import jax  # noqa: PLC0415

    from mfax.agents import atomic_write, curve_csv, load_agent, read_curve  # noqa: PLC0415
    from mfax.evaluation import evaluate_policy  # noqa: PLC0415
    from mfax.multiseed import SEEDS_FILE, agent_dirs  # noqa: PLC0415
    from mfax.netcdf import trajectory_dataset, write_netcdf  # noqa: PLC0415
    from mfax.policies import uniform_policy  # noqa: PLC0415

    agents = [(s, load_agent(d)) for s, d in agent_dirs(model_dir)]
    game, gamma = agents[0][1].game, agents[0][1].gamma
    for s, a in agents[1:]:
        if a.game != game:
            raise ValueError(f"{a.path}: game {a.game!r} differs from {agents[0][1].path}'s {game!r}")
    key = jax.random.key(int(seed))
    results = [evaluate_policy(a.game, a, key, num_envs, gamma=a.gamma) for _, a in agents]
    uniform = evaluate_policy(game, uniform_policy(game), key, num_envs, gamma=gamma)
    curves = [read_curve(Path(a.path) / "curve.csv") for _, a in agents]

    f = lambda x: float(np.asarray(x))  # noqa: E731
    expl = [f(r.exploitability) for r in results]
    per_seed = {}
    for (s, a), r, c in zip(agents, results, curves):
        per_seed[str(s)] = {
            "exploitability": f(r.exploitability), "policy_return": f(r.policy_return),
            "best_response_return": f(r.best_response_return),
            "initial_exploitability": c[0]["exploitability"] if c else None,
        }
    index_file = Path(model_dir) / SEEDS_FILE
    if index_file.exists():
        index = json.loads(index_file.read_text())
        train_seconds = index.get("train_seconds")
    else:  # separate runs: their total cost
        train_seconds = sum((a.description.get("metrics") or {}).get("train_seconds") or 0.0
                            for _, a in agents)
    metrics = {
        "exploitability": float(np.mean(expl)),
        "exploitability_std": float(np.std(expl)),
        "exploitability_min": float(np.min(expl)),
        "exploitability_max": float(np.max(expl)),
        "policy_return": float(np.mean([f(r.policy_return) for r in results])),
        "best_response_return": float(np.mean([f(r.best_response_return) for r in results])),
        "exploitability_undiscounted": float(np.mean(
            [f(r.exploitability_undiscounted) for r in results])),
        "initial_exploitability": _mean([v["initial_exploitability"] for v in per_seed.values()]),
        "uniform_exploitability": f(uniform.exploitability),
        "train_seconds": train_seconds,
        "iterations": max((c[-1]["iteration"] for c in curves if c), default=0),
        "num_seeds": len(agents),
        "eval_num_envs": int(num_envs),
        "per_seed": per_seed,
    }
    first_seed, first = agents[0]
    ds = trajectory_dataset(game, results[0], episodes=episodes, gamma=gamma, attrs={
        "algorithm": first.algorithm,
        "model": str(model_dir),
        "seed": -1 if first_seed is None else int(first_seed),
        "seeds": json.dumps([s for s, _ in agents]),
        "eval_seed": int(seed),
        "training_config": json.dumps(first.description.get("training") or {}, sort_keys=True),
    })
    write_netcdf(ds, trajectory_path)
    atomic_write(curve_path, curve_csv(aggregate_curves(curves), list(CURVE_COLUMNS)))
    atomic_write(metrics_path, dumps_json(metrics))
    return metrics
