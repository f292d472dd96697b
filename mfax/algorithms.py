"""Algorithm registry: every training algorithm, by name, and where its trainer lives.

    from mfax.algorithms import get_algorithm, list_algorithms
    algo = get_algorithm("ippo")
    config = algo.config_class.from_mapping({...}, game="beach_bar_1d", algo="ippo")
    result = algo.run_training(config, seed=0)

The one place that maps an algorithm name to its trainer (the CLI, the
multi-seed trainer, resumption, the agent reader and the pipeline all ask
here).  Two families share one config layer and one agent format:

- ``structural`` (SPG, RSPG): `mfax.training` (`TrainConfig`),
- ``model-free`` (IPPO, RIPPO, M-OMD): `mfax.rl` (`RLConfig`).

Importing this module imports nothing else (no JAX): the names are known at
once, and a trainer's package is imported when first asked for.  Its
functions are looked up in the package each time (``mfax.training.run_training``),
so whatever the package holds is what runs.  docs/algorithms.md defines
each algorithm.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

#: family -> (package, name of its config class in the package)
FAMILIES = {
    "structural": ("mfax.training", "TrainConfig"),
    "model-free": ("mfax.rl", "RLConfig"),
}


@dataclasses.dataclass(frozen=True)
class Algorithm:
    name: str
    family: str  # a key of FAMILIES
    description: str

    @property
    def package(self) -> Any:
        return importlib.import_module(FAMILIES[self.family][0])

    @property
    def config_class(self) -> type:
        """The config class (``from_mapping``, ``to_dict``, ``make_game``, ...); importing
        it loads no JAX."""
        return getattr(self.package, FAMILIES[self.family][1])

    @property
    def make_train(self) -> Callable:
        """``make_train(config, game=None) -> trainer`` (``init`` / ``advance`` /
        ``evaluate`` / ``mf_params`` pieces)."""
        return self.package.make_train

    @property
    def run_training(self) -> Callable:
        """``run_training(config, seed, ...) -> mfax.training.TrainResult``: every package
        exports the one run path, `mfax.training.run.run_training`."""
        return self.package.run_training


_REGISTRY: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm("spg", "structural", "structural policy gradient, feed-forward policy"),
        Algorithm("rspg", "structural", "structural policy gradient, recurrent policy"),
        Algorithm("ippo", "model-free", "independent PPO against the frozen mean field"),
        Algorithm("rippo", "model-free", "independent PPO, recurrent policy"),
        Algorithm("m_omd", "model-free", "Munchausen online mirror descent"),
    )
}


def list_algorithms(family: str | None = None) -> list[str]:
    """The algorithm names (of one family if given), in a fixed order."""
    if family is not None and family not in FAMILIES:
        raise ValueError(
            f"family = {family!r} is not allowed; expected one of " + ", ".join(FAMILIES)
        )
    return [name for name, a in _REGISTRY.items() if family in (None, a.family)]


def get_algorithm(name: str) -> Algorithm:
    """The `Algorithm` called ``name``; an unknown name is a ValueError listing the known."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"algorithm {name!r} is not allowed; expected one of " + ", ".join(list_algorithms())
        ) from None


__all__ = ["Algorithm", "FAMILIES", "get_algorithm", "list_algorithms"]
