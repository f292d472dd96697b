"""Training a model-free learner: `make_train` (config -> `mfax.rl.common.RLTrainer`, the
learner chosen by ``config.algo``) and `run_training` (the chunk-by-chunk driver, as
`mfax.training.run_training`).

The one module that imports the learners (`mfax.rl.ippo`, `mfax.rl.m_omd`), which
import the shared machinery of `mfax.rl.common`; common.py never imports them.
"""

from __future__ import annotations

import functools
import time
from typing import Optional

import jax

from mfax.games.base import Game
from mfax.rl import ippo, m_omd
from mfax.rl.common import RLTrainer, build_trainer
from mfax.rl.config import RLConfig
from mfax.training.driver import Progress, compiled, drive, interrupt_guard
from mfax.training.run import TrainResult, check_seed, finish

#: model-free algorithm -> its learner (``make_learner(config, game, network, rownet, gamma)``)
LEARNERS = {"ippo": ippo.make_learner, "rippo": ippo.make_learner, "m_omd": m_omd.make_learner}


def make_train(config: RLConfig, game: Optional[Game] = None) -> RLTrainer:
    """The `RLTrainer` of ``config`` (cached: the same config reuses compiled functions)."""
    if not isinstance(config, RLConfig):
        raise TypeError(f"mfax.rl.make_train expects an RLConfig, got {type(config).__name__}")
    return _make_train(config, config.make_game() if game is None else game)


@functools.lru_cache(maxsize=16)
def _make_train(config: RLConfig, game: Game) -> RLTrainer:
    return build_trainer(config, game, LEARNERS[config.algo])


@functools.lru_cache(maxsize=16)
def _jitted_init(trainer: RLTrainer):
    return jax.jit(trainer.init)


def run_training(config: RLConfig, seed: int = 0, *, game: Optional[Game] = None,
                 progress: Optional[bool] = None, raise_on_nan: bool = False,
                 stream=None, resume: Optional[Progress] = None,
                 chunk_iterations: Optional[int] = None,
                 interrupt_after: Optional[int] = None) -> TrainResult:
    """Train chunk by chunk; returns a `mfax.training.TrainResult` whose ``params`` are
    the mean-field network parameters (save them with `mfax.training.save_result`).

    ``seconds`` in the curve is the cumulative execution time of the training
    chunks (outer rollouts + learner updates), without compilation or evaluation.
    Ctrl-C, ``resume``, ``chunk_iterations`` and ``interrupt_after`` work as in
    `mfax.training.run_training`.
    """
    check_seed(seed)
    trainer = make_train(config, game)
    with interrupt_guard(stream, after_calls=interrupt_after) as flag:
        t0 = time.perf_counter()
        if resume is None:
            state = _jitted_init(trainer)(jax.random.key(int(seed)))
        else:
            state = resume.state
        advance, evaluate, mf_params = compiled(trainer, state,
                                                ("advance", "evaluate", "mf_params"))
        compile_seconds = time.perf_counter() - t0
        run = drive(advance, evaluate, state, config.num_iterations, config.eval_every,
                    progress=progress, stream=stream, resume=resume,
                    chunk_iterations=chunk_iterations, interrupt=flag)
    return finish(trainer, seed, run, compile_seconds, mf_params=mf_params,
                  resume=resume, raise_on_nan=raise_on_nan)
