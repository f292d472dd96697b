"""`make_train` of the model-free learners: config -> `mfax.rl.common.RLTrainer`, the
learner chosen by ``config.algo`` (run it with `mfax.training.run.run_training`, the one
run path of every algorithm).

The one module that imports the learners (`mfax.rl.ippo`, `mfax.rl.m_omd`), which
import the shared machinery of `mfax.rl.common`; common.py never imports them.
"""

from __future__ import annotations

import functools

from mfax.games.base import Game
from mfax.rl import ippo, m_omd
from mfax.rl.common import RLTrainer, build_trainer
from mfax.rl.config import RLConfig

#: model-free algorithm -> its learner (``make_learner(config, game, network, rownet, gamma)``)
LEARNERS = {"ippo": ippo.make_learner, "rippo": ippo.make_learner, "m_omd": m_omd.make_learner}


def make_train(config: RLConfig, game: Game | None = None) -> RLTrainer:
    """The `RLTrainer` of ``config`` (cached: the same config reuses compiled functions)."""
    if not isinstance(config, RLConfig):
        raise TypeError(f"mfax.rl.make_train expects an RLConfig, got {type(config).__name__}")
    return _make_train(config, config.make_game() if game is None else game)


@functools.lru_cache(maxsize=16)
def _make_train(config: RLConfig, game: Game) -> RLTrainer:
    return build_trainer(config, game, LEARNERS[config.algo])
