"""mfax: mean-field games in JAX, with exact and sample-based mean-field dynamics."""

__version__ = "0.1.0"

from mfax.agents import load_agent  # noqa: E402
from mfax.dynamics import Trajectory, rollout  # noqa: E402
from mfax.evaluation import EvalResult, evaluate_policy  # noqa: E402
from mfax.games import list_games, make_game  # noqa: E402
from mfax.policies import MeanFieldPolicy, uniform_policy  # noqa: E402
from mfax.solvers import solve_tabular  # noqa: E402
from mfax.training import make_train  # noqa: E402

__all__ = [
    "EvalResult", "MeanFieldPolicy", "Trajectory", "evaluate_policy", "list_games",
    "load_agent", "make_game", "make_train", "rollout", "solve_tabular", "uniform_policy",
    "__version__",
]
