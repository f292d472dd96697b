"""Training: structural policy gradients (SPG, RSPG) with a jitted scan over iterations."""

from mfax.training.config import TrainConfig
from mfax.training.spg import (
    CURVE_COLUMNS, Metrics, Trainer, TrainingDiverged, TrainResult, TrainState, make_train,
    run_training, save_result,
)

__all__ = ["CURVE_COLUMNS", "Metrics", "TrainConfig", "Trainer", "TrainingDiverged",
           "TrainResult", "TrainState", "make_train", "run_training", "save_result"]
