"""Model-free learners on the sample-based games: IPPO, recurrent RIPPO and Munchausen OMD.

    from mfax.rl import RLConfig, run_training
    result = run_training(RLConfig(game="beach_bar_1d", algo="ippo", ...), seed=0)
    mfax.training.save_result(result, "agents/ippo")     # loads with mfax.load_agent

See `mfax.rl.train` for `make_train` / `run_training` (the one module that
imports the learners), `mfax.rl.common` for the outer loop and the
single-agent stepping through a frozen mean-field sequence, `mfax.rl.ippo`
and `mfax.rl.m_omd` for the learners, `mfax.rl.config` for the settings
(JAX-free). The names below are imported on first use (PEP 562).
"""

from __future__ import annotations

from mfax._lazy import lazy_getattr

_EXPORTS = {
    **dict.fromkeys(
        (
            "Frozen",
            "RLState",
            "RLTrainer",
            "RowNet",
            "agent_probs",
            "collect",
            "freeze",
            "make_rownet",
        ),
        "mfax.rl.common",
    ),
    "RL_ALGORITHMS": "mfax.rl.config",
    "RLConfig": "mfax.rl.config",
    "make_train": "mfax.rl.train",
    "run_training": "mfax.training.run",
    "save_result": "mfax.training.run",
}


__getattr__ = lazy_getattr(globals(), _EXPORTS)

__all__ = sorted(_EXPORTS)
