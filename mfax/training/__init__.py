"""Training: structural policy gradients (SPG, RSPG) with a jitted scan over iterations.

`mfax.training.spg` is the trainer; `mfax.training.run` holds the run types shared by
every trainer (SPG, RSPG and the model-free learners of `mfax.rl`).
"""

from mfax.training.config import TrainConfig
from mfax.training.run import (
    Metrics, TrainingDiverged, TrainResult, resume_training, save_result,
)
from mfax.training.spg import CURVE_COLUMNS, Trainer, TrainState, make_train, run_training

__all__ = ["CURVE_COLUMNS", "Metrics", "TrainConfig", "Trainer", "TrainingDiverged",
           "TrainResult", "TrainState", "make_train", "resume_training", "run_training",
           "save_result"]
