"""What every trainer shares: the whole run as one scan, and the chunk-by-chunk driver.

`ChunkedTrainer` gives a trainer with ``init`` / ``iteration`` / ``chunk`` /
``evaluate`` pieces (`mfax.training.Trainer`, `mfax.rl.RLTrainer`) its
``num_chunks``, ``trainer(key)`` (the whole run as one computation),
``advance(state, n)`` (``n`` iterations, ``n`` a traced number: one compiled
function for every length) and ``policy(params)``.

`drive` runs compiled ``advance`` / ``evaluate`` callables from Python -- one
seed, or several vmapped together -- with a progress bar, wall-clock timings,
divergence checks, Ctrl-C handling and resumption; `mfax.training.run_training`,
`mfax.rl.run_training` and `mfax.multiseed.train_seeds` build on it.

Interruption (`mfax.training.interrupt`): while a run is driven, SIGINT (Ctrl-C) and
SIGTERM only set a flag; the driver looks at it after every compiled call,
and a call lasts about `CHUNK_SECONDS` (an evaluation interval is run as
several shorter calls; one iteration is the smallest piece).  The run then
stops and returns ``interrupted=True`` with the state reached (for
resumption) and the state of the last evaluation (the agent to save).  A
second Ctrl-C restores the previous handler and raises KeyboardInterrupt.

Resumption: the state carries everything the future depends on (parameters,
optimiser state, iteration, keys), and how the iterations are split into
compiled calls does not change the arithmetic, so a run interrupted and
resumed (`drive(..., resume=Progress)`) is bitwise the run never interrupted.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfax.networks import network_policy
from mfax.training.interrupt import Interrupt, interrupt_guard
from mfax.training.progress import ProgressBar

CURVE_COLUMNS = (
    "iteration",
    "seconds",
    "exploitability",
    "policy_return",
    "best_response_return",
    "exploitability_undiscounted",
)
#: the driver sizes its compiled calls to take about this long, so that Ctrl-C is
#: answered within about this time (or one iteration, if longer)
CHUNK_SECONDS = 0.5


class ChunkedTrainer:
    """Mixin of the trainer dataclasses (fields ``config``, ``game``, ``network``, ``init``,
    ``iteration``, ``chunk``, ``evaluate``)."""

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

    def advance(self, state: Any, n: jax.Array):
        """``n`` (traced, ``0 <= n <= eval_every``) iterations: ``(state, losses[eval_every])``,
        the first ``n`` losses valid.  Compiled once for every ``n``: the driver splits an
        evaluation interval into several calls without changing a bit of the result."""
        buf = jnp.zeros((self.config.eval_every,), jnp.float32)

        def body(i, carry):
            state, buf = carry
            state, loss = self.iteration(state, None)
            return state, buf.at[i].set(jnp.asarray(loss, jnp.float32))

        return lax.fori_loop(0, n, body, (state, buf))

    def policy(self, params: Any = None):
        """The mean-field policy (`MeanFieldPolicy`) of MeanFieldNet parameters."""
        return network_policy(self.network, self.game, params)


def policy_probs_finite(policy: Any, params: Any, obs: jax.Array) -> jax.Array:
    """Whether ``policy`` (a `MeanFieldPolicy`) with ``params`` gives finite action
    probabilities for every state along one observation sequence ``obs[T, d]``.

    The divergence guard of every trainer: parameters can be finite but so large that
    the network's logits overflow and the probabilities are NaN.  One environment's
    observations cost about ``1 / num_envs`` of a rollout's forward pass.
    """

    def step(carry, xs):
        o, t = xs
        probs, carry = policy.apply(params, carry, o, t)
        return carry, jnp.all(jnp.isfinite(probs))

    ts = jnp.arange(obs.shape[0], dtype=jnp.int32)
    _, ok = lax.scan(step, policy.initial_carry(), (obs, ts))
    return jnp.all(ok)


def all_finite(tree: Any) -> jax.Array:
    """Whether every floating-point leaf of ``tree`` is finite: with `keep_if`, the
    trainers' guard against a diverged step (parameters, gradients, optimiser state)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(
        jnp.stack(
            [jnp.all(jnp.isfinite(x)) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
        )
    )


def keep_if(ok: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where ``ok``, else ``old``, leaf by leaf: a diverged step is not applied."""
    return jax.tree_util.tree_map(lambda n, o: jnp.where(ok, n, o), new, old)


@functools.lru_cache(maxsize=32)
def _compiled_for(trainer: Any, shapes: Any, names: tuple[str, ...]):
    state = jax.tree_util.tree_unflatten(shapes[0], shapes[1])
    n = jax.ShapeDtypeStruct((), jnp.int32)
    return tuple(
        jax.jit(getattr(trainer, name))
        .lower(*((state, n) if name == "advance" else (state,)))
        .compile(compiler_options=trainer.config.compiler_options(old_emitters=name == "evaluate"))
        for name in names
    )


def compiled(trainer: Any, state: Any, names: tuple[str, ...] = ("advance", "evaluate")):
    """AOT-compiled ``trainer.<name>`` for each name (cached per trainer: a rerun skips
    compilation).  ``advance`` takes ``(state, n)``, the others ``state``."""
    leaves, treedef = jax.tree_util.tree_flatten(state)
    # with the leaves' shardings: a state spread over several devices compiles for them
    specs = tuple(
        jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None))
        for x in leaves
    )
    return _compiled_for(trainer, (treedef, specs), names)


# --- the driver ----------------------------------------------------------------------------
@dataclasses.dataclass
class Progress:
    """A run so far, as `drive` continues it (``resume``) and returns it (`Driven`).
    Unbatched: ``curve`` a list of rows and ``losses`` an array; batched: lists of them."""

    state: Any  # the state reached (iterations run: state.step)
    curve: Any  # rows with the columns CURVE_COLUMNS, one per evaluation
    losses: Any  # [iterations run]
    train_seconds: float = 0.0
    eval_seconds: float = 0.0


@dataclasses.dataclass
class Driven(Progress):
    """What `drive` returns.  ``diverged_at``: first non-finite iteration (None if none;
    a list per seed when batched); ``eval_state``: the state of the last evaluation (the
    agent to keep; None if nothing was evaluated in this call); ``interrupted``: stopped
    by `interrupt_guard` before the end."""

    diverged_at: Any = None
    eval_state: Any = None
    interrupted: bool = False
    #: iteration whose evaluation was not finite (the run went back to the one before)
    nonfinite_eval_at: Any = None


def _finite_metrics(m, n: int) -> np.ndarray:
    return np.array(
        [all(np.isfinite(float(getattr(m, k)[i])) for k in CURVE_COLUMNS[2:]) for i in range(n)]
    )


def _select(mask: np.ndarray, old: Any, new: Any) -> Any:
    """Per seed (leading axis): ``old`` where ``mask``, else ``new``."""
    m = jnp.asarray(mask)
    return jax.tree_util.tree_map(
        lambda o, x: jnp.where(m.reshape(m.shape + (1,) * (x.ndim - 1)), o, x), old, new
    )


def drive(
    advance: Callable,
    evaluate: Callable,
    state: Any,
    num_iterations: int,
    eval_every: int,
    *,
    num_seeds: int | None = None,
    progress: bool | None = None,
    stream=None,
    resume: Progress | None = None,
    chunk_iterations: int | None = None,
    interrupt: Interrupt | None = None,
    on_evaluation: Callable[[Progress], None] | None = None,
) -> Driven:
    """Evaluate ``state``, then run up to ``num_iterations`` iterations, evaluating every
    ``eval_every``.

    ``advance(state, n) -> (state, losses[eval_every])`` and ``evaluate(state) ->
    Metrics`` are compiled; with ``num_seeds`` they are vmapped and every leaf has a
    leading seed axis.  Each call of ``advance`` runs ``chunk_iterations`` iterations
    (None: as many as take about `CHUNK_SECONDS`, measured) without crossing an
    evaluation.  The ``seconds`` of the curve are the cumulative execution time of the
    training calls at each evaluation.

    Divergence: the run stops once (every seed) diverged, as recorded by
    ``state.failed_at`` (the trainers' guard), and is evaluated there.  An evaluation
    with non-finite metrics after a finite one also counts: that seed goes back to the
    state of its last finite evaluation and stops.

    ``resume`` continues a `Progress` (its state, curve, losses and seconds) without
    evaluating again.  ``interrupt`` (default: a new `interrupt_guard`) stops the run
    after the call in flight.  ``on_evaluation(progress)`` is called after every
    evaluation during training (a checkpoint hook: the `Progress` a resumed run needs).
    """
    if interrupt is None:
        with interrupt_guard(stream) as flag:
            return drive(
                advance,
                evaluate,
                state,
                num_iterations,
                eval_every,
                num_seeds=num_seeds,
                progress=progress,
                stream=stream,
                resume=resume,
                chunk_iterations=chunk_iterations,
                interrupt=flag,
                on_evaluation=on_evaluation,
            )
    n = 1 if num_seeds is None else num_seeds
    batch = (lambda x: np.asarray(x)[None]) if num_seeds is None else np.asarray
    unbatch = (lambda xs: xs[0]) if num_seeds is None else list
    bar = ProgressBar(
        num_iterations, stream=sys.stderr if stream is None else stream, enabled=progress
    )
    if resume is None:
        curves: list[list[dict[str, float]]] = [[] for _ in range(n)]
        losses: list[np.ndarray] = []
        train_seconds = eval_seconds = 0.0
    else:
        curves = [
            [dict(r) for r in c] for c in ([resume.curve] if num_seeds is None else resume.curve)
        ]
        losses = [
            np.stack(
                [
                    np.asarray(x, np.float32)
                    for x in ([resume.losses] if num_seeds is None else resume.losses)
                ]
            )
        ]
        train_seconds, eval_seconds = resume.train_seconds, resume.eval_seconds
    eval_state = last_good = None
    good = np.zeros(n, bool)  # seeds with a finite evaluation (in last_good) to go back to
    nonfinite_eval: list[int | None] = [None] * n

    def record(state):
        nonlocal eval_seconds, eval_state, last_good
        t = time.perf_counter()
        m = jax.tree_util.tree_map(batch, jax.device_get(evaluate(state)))
        eval_seconds += time.perf_counter() - t
        finite = _finite_metrics(m, n)
        back = ~finite & good
        if back.any():  # the policy evaluates to NaN / inf: back to the last finite one
            state = last_good if num_seeds is None else _select(back, last_good, state)
            failed = batch(state.failed_at).astype(np.int32)
            for i in np.flatnonzero(back):
                failed[i] = curves[i][-1]["iteration"]
                nonfinite_eval[i] = int(m.iteration[i])
            state = state._replace(failed_at=jnp.asarray(failed if num_seeds else failed[0]))
        for i in np.flatnonzero(~back):
            curves[i].append(
                {
                    "iteration": int(m.iteration[i]),
                    "seconds": train_seconds,
                    **{k: float(getattr(m, k)[i]) for k in CURVE_COLUMNS[2:]},
                }
            )
        ok = finite & ~back
        if ok.all():  # the usual case: no per-seed selection (an eager program per leaf)
            last_good = state
        elif ok.any():
            last_good = state if last_good is None else _select(ok, state, last_good)
        good[ok] = True
        bar.update(int(np.max(m.iteration)), float(np.mean(m.exploitability)), train_seconds)
        eval_state = state
        return state

    step = int(np.max(batch(state.step)))
    if resume is None and not interrupt.requested:
        state = record(state)
    elif resume is not None and all(curves):
        bar.update(step, float(np.mean([c[-1]["exploitability"] for c in curves])), train_seconds)
    per_iteration: float | None = None
    started = resume is not None or eval_state is not None
    while started and step < num_iterations and not interrupt.requested:
        todo = (step // eval_every + 1) * eval_every - step
        if chunk_iterations is not None:
            k = min(chunk_iterations, todo)
        elif per_iteration is None:
            k = 1
        else:
            k = int(min(max(CHUNK_SECONDS // max(per_iteration, 1e-9), 1), todo))
        t = time.perf_counter()
        state, buf = advance(state, np.int32(k))
        losses.append(batch(jax.device_get(buf))[:, :k])  # [seeds, k]
        dt = time.perf_counter() - t
        train_seconds += dt
        per_iteration = dt / k
        step += k
        interrupt.count_call()
        if step % eval_every == 0 or np.all(batch(state.failed_at) >= 0):
            state = record(state)
            if np.all(batch(state.failed_at) >= 0):
                break
            if on_evaluation is not None:
                so_far = np.concatenate(losses, 1)
                on_evaluation(
                    Progress(
                        state,
                        unbatch([list(c) for c in curves]),
                        unbatch(list(so_far)),
                        train_seconds,
                        eval_seconds,
                    )
                )
    all_failed = bool(np.all(batch(state.failed_at) >= 0))
    interrupted = interrupt.requested and step < num_iterations and not all_failed
    bar.close()
    losses_arr = np.concatenate(losses, 1) if losses else np.zeros((n, 0), np.float32)
    failed = [int(f) for f in batch(state.failed_at)]
    diverged_at = [f if f >= 0 else None for f in failed]
    cut = [losses_arr[i] if f < 0 else losses_arr[i, : f + 1] for i, f in enumerate(failed)]
    return Driven(
        state,
        unbatch(curves),
        unbatch(cut),
        train_seconds,
        eval_seconds,
        unbatch(diverged_at),
        eval_state,
        interrupted,
        unbatch(nonfinite_eval),
    )
