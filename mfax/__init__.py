"""mfax: mean-field games in JAX, with exact and sample-based mean-field dynamics."""

from mfax.dynamics import Trajectory, rollout
from mfax.evaluation import EvalResult, evaluate_policy
from mfax.games import list_games, make_game
from mfax.policies import MeanFieldPolicy, uniform_policy

__version__ = "0.1.0"

__all__ = [
    "EvalResult", "MeanFieldPolicy", "Trajectory", "evaluate_policy", "list_games",
    "make_game", "rollout", "uniform_policy", "__version__",
]
