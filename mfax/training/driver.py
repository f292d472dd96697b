"""What every trainer shares: the whole run as one scan, and the chunk-by-chunk driver.

`ChunkedTrainer` gives a trainer with ``init`` / ``chunk`` / ``evaluate``
pieces (`mfax.training.Trainer`, `mfax.rl.RLTrainer`) its ``num_chunks``,
``trainer(key)`` (the whole run as one computation) and ``policy(params)``.

`drive` runs compiled ``chunk`` / ``evaluate`` callables chunk by chunk from
Python -- one seed, or several vmapped together -- with a progress bar,
wall-clock timings and a NaN check between chunks; `mfax.training.run_training`,
`mfax.rl.run_training` and `mfax.multiseed.train_seeds` build on it.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfax.networks import network_policy
from mfax.training.progress import ProgressBar

CURVE_COLUMNS = ("iteration", "seconds", "exploitability", "policy_return",
                 "best_response_return", "exploitability_undiscounted")


class ChunkedTrainer:
    """Mixin of the trainer dataclasses (fields ``config``, ``game``, ``network``, ``init``,
    ``chunk``, ``evaluate``)."""

    @property
    def num_chunks(self) -> int:
        return self.config.num_iterations // self.config.eval_every

    def __call__(self, key: jax.Array):
        """Whole run: returns ``(final state, Metrics [num_chunks + 1], losses [num_iterations])``."""
        state = self.init(key)
        first = self.evaluate(state)

        def body(state, _):
            state, losses = self.chunk(state)
            return state, (self.evaluate(state), losses)

        state, (metrics, losses) = lax.scan(body, state, None, length=self.num_chunks)
        metrics = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a[None], b]), first, metrics)
        return state, metrics, losses.reshape(-1)

    def policy(self, params: Any = None):
        """The mean-field policy (`MeanFieldPolicy`) of MeanFieldNet parameters."""
        return network_policy(self.network, self.game, params)


@functools.lru_cache(maxsize=32)
def _compiled_for(trainer: Any, shapes: Any, names: tuple[str, ...]):
    state = jax.tree_util.tree_unflatten(shapes[0], shapes[1])
    return tuple(jax.jit(getattr(trainer, n)).lower(state).compile() for n in names)


def compiled(trainer: Any, state: Any, names: tuple[str, ...] = ("chunk", "evaluate")):
    """AOT-compiled ``trainer.<name>`` for each name (cached per trainer: a rerun skips
    compilation)."""
    leaves, treedef = jax.tree_util.tree_flatten(state)
    specs = tuple(jax.ShapeDtypeStruct(x.shape, x.dtype) for x in leaves)
    return _compiled_for(trainer, (treedef, specs), names)


@dataclasses.dataclass
class Driven:
    """What `drive` returns.  Unbatched: ``curve`` a list of rows, ``losses`` an array and
    ``diverged_at`` an int or None; batched: one of each per seed, in lists."""

    state: Any  # the final state (after divergence: the last good parameters)
    curve: Any  # rows with the columns CURVE_COLUMNS, one per evaluation
    losses: Any  # [iterations run], cut after the first non-finite iteration
    train_seconds: float  # execution of the training chunks (no evaluation, no compilation)
    eval_seconds: float
    diverged_at: Any  # first non-finite iteration, None if none


def drive(chunk: Callable, evaluate: Callable, state: Any, num_chunks: int, num_iterations: int,
          *, num_seeds: Optional[int] = None, progress: Optional[bool] = None,
          stream=None) -> Driven:
    """Evaluate ``state``, then run up to ``num_chunks`` chunks, evaluating after each.

    ``chunk(state) -> (state, losses)`` and ``evaluate(state) -> Metrics`` are
    compiled; with ``num_seeds`` they are vmapped and every leaf has a leading
    seed axis.  The ``seconds`` of the curve are the cumulative execution time
    of the chunks at each evaluation.  The run stops after the chunk in which
    (every seed) diverged, as recorded by ``state.failed_at``.
    """
    n = 1 if num_seeds is None else num_seeds
    batch = (lambda x: np.asarray(x)[None]) if num_seeds is None else np.asarray
    bar = ProgressBar(num_iterations, stream=sys.stderr if stream is None else stream,
                      enabled=progress)
    curves: list[list[dict[str, float]]] = [[] for _ in range(n)]
    losses: list[np.ndarray] = []
    train_seconds = eval_seconds = 0.0

    def record(state):
        nonlocal eval_seconds
        t = time.perf_counter()
        m = jax.tree_util.tree_map(batch, jax.device_get(evaluate(state)))
        eval_seconds += time.perf_counter() - t
        for i in range(n):
            curves[i].append({"iteration": int(m.iteration[i]), "seconds": train_seconds,
                              **{k: float(getattr(m, k)[i]) for k in CURVE_COLUMNS[2:]}})
        bar.update(int(np.max(m.iteration)), float(np.mean(m.exploitability)), train_seconds)

    record(state)
    for _ in range(num_chunks):
        t = time.perf_counter()
        state, chunk_losses = chunk(state)
        losses.append(batch(jax.device_get(chunk_losses)))  # [seeds, eval_every]
        train_seconds += time.perf_counter() - t
        record(state)
        if np.all(batch(state.failed_at) >= 0):
            break
    bar.close()
    losses_arr = np.concatenate(losses, 1) if losses else np.zeros((n, 0), np.float32)
    failed = [int(f) for f in batch(state.failed_at)]
    diverged_at = [f if f >= 0 else None for f in failed]
    cut = [losses_arr[i] if f < 0 else losses_arr[i, :f + 1] for i, f in enumerate(failed)]
    if num_seeds is None:
        return Driven(state, curves[0], cut[0], train_seconds, eval_seconds, diverged_at[0])
    return Driven(state, curves, cut, train_seconds, eval_seconds, diverged_at)
