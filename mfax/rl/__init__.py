"""Model-free learners on the sample-based games: IPPO, recurrent RIPPO and Munchausen OMD.

    from mfax.rl import RLConfig, run_training
    result = run_training(RLConfig(game="beach_bar_1d", algo="ippo", ...), seed=0)
    mfax.training.save_result(result, "agents/ippo")     # loads with mfax.load_agent

See `mfax.rl.train` for `make_train` / `run_training` (the one module that
imports the learners), `mfax.rl.common` for the outer loop and the
single-agent stepping through a frozen mean-field sequence, `mfax.rl.ippo`
and `mfax.rl.m_omd` for the learners, `mfax.rl.config` for the settings.
"""

from mfax.rl.common import (
    Frozen, RLState, RLTrainer, RowNet, agent_probs, collect, freeze, make_rownet,
)
from mfax.rl.config import RL_ALGORITHMS, RLConfig
from mfax.rl.train import make_train, run_training
from mfax.training.run import save_result

__all__ = ["Frozen", "RLConfig", "RLState", "RLTrainer", "RL_ALGORITHMS", "RowNet", "agent_probs",
           "collect", "freeze", "make_rownet", "make_train", "run_training", "save_result"]
