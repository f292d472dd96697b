"""Runs and their files: the one definition of every output path of the pipeline.

A *run* is one (game, algorithm, sweep setting) of the grid; without a
sweep its name is the algorithm's (``spg``), with one it carries the setting
(``spg-lr=0.001``).  Its files (`PATHS`, templates in ``{game}`` and ``{run}``)::

    data/<game>/<run>/config.yaml      resolved training config (`mfax train --config`)
    models/<game>/<run>/               seeds.json + one agent per seed in seed_<s>/
    data/<game>/<run>/trajectory.nc    evaluated mean-field trajectory (xarray / NetCDF)
    reports/<game>/<run>/metrics.json  DVC metrics
    reports/<game>/<run>/curve.csv     training curve (DVC plots)
    reports/<game>/<run>/report.html   human report (+ figures/*.png)
    reports/summary.{md,csv,png}       one table and one comparison plot over all runs
    data/<game>/<run>/timings/<stage>.json  what the stage's job spent its time on
    logs/<game>/<run>/<stage>.log      what a Snakemake job printed (not for git or DVC)
    checkpoints/<game>/<run>/          a training job's state while it runs (not for git or
                                       DVC): a retried, preempted or killed job continues
                                       from it; removed once the model is saved

Every user of a path derives it from here: `Run`'s properties fill the
templates for one run, the Snakemake rules use them as they are (``{game}``
and ``{run}`` are the rules' wildcards), and the dvc.yaml generator fills them
with ``${item.game}`` and ``${item.run}``.  Nothing here imports JAX.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

#: the files of a run, as templates in {game} and {run}
PATHS = {
    "config": "data/{game}/{run}/config.yaml",
    "model": "models/{game}/{run}",
    "trajectory": "data/{game}/{run}/trajectory.nc",
    "metrics": "reports/{game}/{run}/metrics.json",
    "curve": "reports/{game}/{run}/curve.csv",
    "report": "reports/{game}/{run}/report.html",
    "figures": "reports/{game}/{run}/figures",
}
#: a Snakemake job's log: per run and stage (``{stage}`` is train, evaluate, report)
LOG = "logs/{game}/{run}/{stage}.log"
SUMMARY_LOG = "logs/summary.log"
#: a job's timings (`mfax.pipeline.timings`), per run and stage: a DVC output, not a metric
TIMINGS = "data/{game}/{run}/timings/{stage}.json"
#: where a training job keeps its state until its model is saved (`mfax.multiseed`)
CHECKPOINT = "checkpoints/{game}/{run}"
#: CPU threads of JAX's computations in a train or evaluate job (``mfax --threads``): the
#: Snakemake rules' ``threads`` and dvc.yaml's commands.  Jobs that share the cores run
#: faster on their share; and since the number of threads decides how XLA splits some
#: of training's sums, both runners train the same bits on any number of cores
#: (docs/PIPELINE.md)
JOB_THREADS = 1
#: the stages whose jobs write one, in pipeline order
TIMED_STAGES = ("train", "evaluate", "report")
SUMMARY_OUTPUTS = ("reports/summary.md", "reports/summary.csv", "reports/summary.png")
#: the index of a model folder (`mfax.multiseed.SEEDS_FILE`) and the files of one seed's
#: agent in it, ``seed_<s>/`` (`mfax.agents`)
SEEDS_FILE = "seeds.json"
AGENT_FILES = ("weights.msgpack", "agent.json", "curve.csv")


def path(kind: str, game: str = "{game}", run: str = "{run}") -> str:
    """The ``kind`` file (a key of `PATHS`) of a run; by default the template itself."""
    return PATHS[kind].format(game=game, run=run)


def log_path(stage: str, game: str = "{game}", run: str = "{run}") -> str:
    """The log file of a run's ``stage`` job; by default the template in {game} and {run}."""
    return LOG.format(game=game, run=run, stage=stage)


def timings_path(stage: str, game: str = "{game}", run: str = "{run}") -> str:
    """The timings file of a run's ``stage`` job; by default the template in {game} and {run}."""
    return TIMINGS.format(game=game, run=run, stage=stage)


def checkpoint_path(game: str = "{game}", run: str = "{run}") -> str:
    """The training checkpoint folder of a run; by default the template in {game} and {run}."""
    return CHECKPOINT.format(game=game, run=run)


def model_files(seeds: list[int], game: str = "{game}", run: str = "{run}") -> list[str]:
    """The files a model folder holds for these seeds: `SEEDS_FILE`, then every agent file."""
    model = path("model", game, run)
    return [f"{model}/{SEEDS_FILE}"] + [f"{model}/seed_{s}/{f}" for s in seeds for f in AGENT_FILES]


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


def _file(kind: str) -> property:
    """A `Run` property: the run's path of ``kind`` (a key of `PATHS`)."""
    return property(lambda run: run.path(kind), doc=f"the run's {kind} path (PATHS[{kind!r}])")


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

    # the files of a run (`PATHS`)
    def path(self, kind: str) -> str:
        return path(kind, self.game, self.name)

    config = _file("config")
    model = _file("model")
    trajectory = _file("trajectory")
    metrics = _file("metrics")
    curve = _file("curve")
    report = _file("report")
    figures = _file("figures")


def expected_outputs(pipe) -> set[str]:
    """Every output path of the pipeline (the same set for Snakemake and DVC) for a
    `mfax.pipeline.Pipeline`."""
    out = set(SUMMARY_OUTPUTS)
    for r in pipe.runs():
        out |= {r.path(kind) for kind in PATHS}
        out |= {timings_path(stage, r.game, r.name) for stage in TIMED_STAGES}
    return out
