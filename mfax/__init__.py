"""mfax: mean-field games in JAX, with exact and sample-based mean-field dynamics.

The package is lazy (PEP 562): ``import mfax`` loads no JAX; ``mfax.make_game``
and the other names below import their module when first used, and a
submodule (``mfax.training``) is imported when first accessed as an attribute.
So ``mfax --help``, the pipeline's commands and Snakefile parsing stay fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mfax._lazy import lazy_getattr
from mfax._version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "load_agent": "mfax.agents",
    "Trajectory": "mfax.dynamics",
    "rollout": "mfax.dynamics",
    "EvalResult": "mfax.evaluation",
    "evaluate_policy": "mfax.evaluation",
    "list_games": "mfax.games",
    "make_game": "mfax.games",
    "MeanFieldPolicy": "mfax.policies",
    "uniform_policy": "mfax.policies",
    "solve_tabular": "mfax.solvers",
    "list_solvers": "mfax.solvers",
    "make_train": "mfax.training",
    "list_algorithms": "mfax.algorithms",
}

__all__ = [
    "EvalResult",
    "MeanFieldPolicy",
    "Trajectory",
    "evaluate_policy",
    "list_algorithms",
    "list_games",
    "list_solvers",
    "load_agent",
    "make_game",
    "make_train",
    "rollout",
    "solve_tabular",
    "uniform_policy",
    "__version__",
]

if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from mfax.agents import load_agent
    from mfax.algorithms import list_algorithms
    from mfax.dynamics import Trajectory, rollout
    from mfax.evaluation import EvalResult, evaluate_policy
    from mfax.games import list_games, make_game
    from mfax.policies import MeanFieldPolicy, uniform_policy
    from mfax.solvers import list_solvers, solve_tabular
    from mfax.training import make_train


__getattr__ = lazy_getattr(globals(), _EXPORTS, submodules=True)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
