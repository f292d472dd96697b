"""mfax: mean-field games in JAX, with exact and sample-based mean-field dynamics."""

from mfax.dynamics import Trajectory, rollout
from mfax.evaluation import EvalResult, evaluate_policy
from mfax.games import list_games, make_game
from mfax.policies import MeanFieldPolicy, uniform_policy
from mfax.agents import load_agent
from mfax.training import make_train

__version__ = "0.1.0"

__all__ = [
    "EvalResult", "MeanFieldPolicy", "Trajectory", "evaluate_policy", "list_games", "load_agent",
    "make_train",
    "make_game", "rollout", "uniform_policy", "__version__",
]
