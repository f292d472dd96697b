"""Training: structural policy gradients (SPG, RSPG) with a jitted scan over iterations.

`mfax.training.spg` is the trainer; `mfax.training.run` holds the run types shared by
every trainer (SPG, RSPG and the model-free learners of `mfax.rl`);
`mfax.training.config` the settings (importing it loads no JAX, so the pipeline can
check params.yaml without JAX). The names below are imported on first use (PEP 562).
"""

from __future__ import annotations

from mfax._lazy import lazy_getattr

_EXPORTS = {
    "TrainConfig": "mfax.training.config",
    "Metrics": "mfax.training.run",
    "TrainingDiverged": "mfax.training.run",
    "TrainResult": "mfax.training.run",
    "resume_training": "mfax.training.run",
    "save_result": "mfax.training.run",
    "CURVE_COLUMNS": "mfax.training.driver",
    "Trainer": "mfax.training.spg",
    "TrainState": "mfax.training.spg",
    "make_train": "mfax.training.spg",
    "run_training": "mfax.training.run",
}


__getattr__ = lazy_getattr(globals(), _EXPORTS)

__all__ = sorted(_EXPORTS)
