"""Several seeds of one run, trained together: one jitted, vmapped computation.

`train_seeds(config, seeds)` is `mfax.training.run_training` vmapped over
seed keys: the same ``init`` / ``chunk`` / ``evaluate`` pieces of
`mfax.training.make_train`, compiled once for all seeds, run chunk by chunk
from Python (wall-clock seconds at every evaluation, progress line, NaN
check).  Seed ``s`` starts from ``jax.random.key(s)`` exactly as
``run_training(config, s)`` does.  Each seed is saved as an ordinary agent
directory (`mfax.training.save_result`) under ``OUT/seed_<s>/``, with
``OUT/seeds.json`` listing them; `mfax.load_agent("OUT/seed_0")` reads one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp

from mfax.algorithms import get_algorithm, list_algorithms
from mfax.io import atomic_write
from mfax.sharding import replicate
from mfax.training.checkpoint import load_checkpoint, save_checkpoint
from mfax.training.driver import Progress, drive
from mfax.training.interrupt import interrupt_guard
from mfax.training.run import TrainResult, divergence_message, interrupt_message, save_result

SEEDS_FILE = "seeds.json"
#: a checkpointed multi-seed run saves its state at most this often (seconds)
CHECKPOINT_SECONDS = 60.0


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / f"seed_{int(seed)}"


def known_algorithms() -> list[str]:
    """Every algorithm name (`mfax.algorithms.list_algorithms`)."""
    return list_algorithms()


def _stack(trees: list) -> object:
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)


def init_seeds(trainer):
    """``keys[N] -> state[N]``: every seed's initial state, one seed after another.

    Not vmapped, on purpose. Vmapped, an orthogonal initialiser (the GRU's recurrent
    kernels) becomes a *batched* LAPACK QR, and jaxlib 0.10's CPU kernels split a batch
    across XLA's intra-op thread pool and then block that pool thread until the pieces
    finish: two such calls running at once on a 2-thread pool wait on each other for ever
    (docs/ERRORS.md, "A JAX job that hangs at 0% CPU"). ``lax.map`` keeps each QR to one
    matrix and gives the same bits; ``init`` runs once, so the lost vectorisation is
    negligible.
    """

    def init(keys):
        return jax.lax.map(trainer.init, keys)

    return init


def _load_checkpoints(checkpoint: Path, trainer, config, seeds: list[int]) -> Progress | None:
    """The saved progress of every seed, stacked; None (start afresh) when any is missing,
    unreadable, from another config, or at another iteration."""
    try:
        saved = [load_checkpoint(seed_dir(checkpoint, s), trainer) for s in seeds]
    except (OSError, ValueError):
        return None
    if (
        any(
            c.meta["config"] != config.to_dict() or c.meta["seed"] != s
            for c, s in zip(saved, seeds)
        )
        or len({c.iteration for c in saved}) != 1
    ):
        return None
    return Progress(
        _stack([c.state for c in saved]),
        [c.curve for c in saved],
        [c.losses for c in saved],
        saved[0].train_seconds,
        saved[0].eval_seconds,
    )


def _checkpointer(checkpoint: Path, config, seeds: list[int], every: float):
    """The `drive` hook that saves every seed's progress at most every ``every`` seconds."""
    last = time.perf_counter()

    def save(progress: Progress) -> None:
        nonlocal last
        if time.perf_counter() - last < every:
            return
        for i, s in enumerate(seeds):
            one = Progress(
                jax.tree_util.tree_map(lambda x, i=i: x[i], progress.state),
                progress.curve[i],
                progress.losses[i],
                progress.train_seconds,
                progress.eval_seconds,
            )
            save_checkpoint(
                seed_dir(checkpoint, s), one, config=config, seed=s, status="interrupted"
            )
        last = time.perf_counter()

    return save


def train_seeds(
    config,
    seeds: Sequence[int],
    *,
    progress: bool | None = None,
    stream=None,
    raise_on_interrupt: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
    interrupt_after: int | None = None,
):
    """Train every seed in one vmapped run; returns one `TrainResult` per seed.

    Works for every trainer with the ``init / advance / evaluate`` pieces (SPG,
    RSPG and the model-free learners, whose mean-field parameters come from
    ``trainer.mf_params(state)``).  Ctrl-C (or SIGTERM) stops the run after the
    compiled call in flight (`mfax.training.interrupt.interrupt_guard`); it then
    raises KeyboardInterrupt (so a pipeline job fails and keeps no partial
    model folder), or with ``raise_on_interrupt=False`` returns the last
    evaluated agents marked ``interrupted``.

    ``checkpoint`` (a folder): every seed's training state is saved there after an
    evaluation, at most every ``checkpoint_seconds``, and a run started again with the
    same folder, config and seeds continues from it (bitwise the run never stopped), so a
    preempted or killed job loses at most that much work.  The caller removes the folder
    once the agents are saved.  ``interrupt_after`` (testing hook) acts as if Ctrl-C came
    after that many compiled calls.
    """

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds = {seeds!r} is not allowed; expected distinct integers")
    trainer = get_algorithm(config.algo).make_train(config)
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds, jnp.uint32))
    resume = (
        None if checkpoint is None else _load_checkpoints(Path(checkpoint), trainer, config, seeds)
    )
    # one compiled program (run eagerly, the initialisers compile op by op: most of a
    # small job's time)
    options = config.compiler_options()  # fast_compile: XLA without LLVM optimisation
    state = (
        jax.jit(init_seeds(trainer), compiler_options=config.compiler_options(old_emitters=True))(
            keys
        )
        if resume is None
        else resume.state
    )
    state = replicate(state)  # several devices: on all of them
    hook = (
        None
        if checkpoint is None
        else _checkpointer(Path(checkpoint), config, seeds, checkpoint_seconds)
    )

    with interrupt_guard(stream, after_calls=interrupt_after) as flag:
        t0 = time.perf_counter()
        advance = (
            jax.jit(jax.vmap(trainer.advance, (0, None)))
            .lower(state, jax.ShapeDtypeStruct((), jnp.int32))
            .compile(compiler_options=options)
        )
        evaluate = (
            jax.jit(jax.vmap(trainer.evaluate))
            .lower(state)
            .compile(compiler_options=config.compiler_options(old_emitters=True))
        )
        compile_seconds = time.perf_counter() - t0

        run = drive(
            advance,
            evaluate,
            state,
            config.num_iterations,
            config.eval_every,
            num_seeds=len(seeds),
            progress=progress,
            stream=stream,
            interrupt=flag,
            resume=resume,
            on_evaluation=hook,
        )
    if run.interrupted and checkpoint is not None and run.eval_state is not None:
        done = run.curve[0][-1]  # keep the work up to the last evaluation
        hook = _checkpointer(Path(checkpoint), config, seeds, every=0.0)
        hook(
            Progress(
                run.eval_state,
                run.curve,
                [x[: done["iteration"]] for x in run.losses],
                done["seconds"],
                run.eval_seconds,
            )
        )
    if run.interrupted and raise_on_interrupt:
        raise KeyboardInterrupt
    if run.eval_state is None:  # interrupted before the first evaluation
        return [
            TrainResult(
                trainer,
                seed,
                None,
                [],
                run.losses[i],
                compile_seconds,
                0.0,
                0.0,
                interrupted=True,
                message="training interrupted before the first evaluation; nothing to save",
            )
            for i, seed in enumerate(seeds)
        ]
    all_params = jax.device_get(
        jax.jit(jax.vmap(trainer.mf_params), compiler_options=options)(run.eval_state)
    )
    results = []
    for i, seed in enumerate(seeds):
        params = jax.tree_util.tree_map(lambda x, i=i: x[i], all_params)
        failed = run.diverged_at[i]
        r = TrainResult(
            trainer,
            seed,
            params,
            run.curve[i],
            run.losses[i],
            compile_seconds,
            run.train_seconds,
            run.eval_seconds,
            failed,
            interrupted=run.interrupted and failed is None,
        )
        if failed is not None:
            r.message = f"seed {seed}: " + divergence_message(
                failed, config.lr, run.nonfinite_eval_at[i]
            )
        elif r.interrupted:
            r.message = f"seed {seed}: " + interrupt_message(
                r.iterations_run, config.num_iterations, run.curve[i]
            )
        results.append(r)
    return results


def save_seeds(results, out: str | Path) -> Path:
    """Save every seed's agent under ``out/seed_<s>/`` and the index ``out/seeds.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for r in results:
        save_result(r, seed_dir(out, r.seed))
    index = {
        "seeds": [r.seed for r in results],
        "agents": [seed_dir(out, r.seed).name for r in results],
        "trained_together": True,
        "compile_seconds": results[0].compile_seconds,
        "train_seconds": results[0].train_seconds,
        "eval_seconds": results[0].eval_seconds,
        "diverged": {str(r.seed): r.diverged_at for r in results if r.diverged_at is not None},
    }
    atomic_write(out / SEEDS_FILE, json.dumps(index, indent=2) + "\n")
    return out


def agent_dirs(path: str | Path) -> list[tuple[int | None, Path]]:
    """The agents of a model folder: ``[(seed, dir)]``.

    A folder written by `save_seeds` (``seeds.json`` + ``seed_<s>/``) or a
    single agent directory written by ``mfax train`` (``agent.json``).
    """
    from mfax.agents import DESCRIPTION_FILE, read_description

    path = Path(path)
    index = path / SEEDS_FILE
    if index.exists():
        try:
            data = json.loads(index.read_text())
            pairs = [(int(s), path / a) for s, a in zip(data["seeds"], data["agents"])]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(
                f"{index}: not a valid seeds index (truncated or corrupt?): {err}"
            ) from None
        return pairs
    if (path / DESCRIPTION_FILE).exists():
        return [(read_description(path).get("seed"), path)]
    if not path.exists():
        raise FileNotFoundError(f"model folder {str(path)!r} does not exist (train it first)")
    raise FileNotFoundError(
        f"{path}: neither {SEEDS_FILE} (several seeds) nor "
        f"{DESCRIPTION_FILE} (one agent); not an mfax model folder"
    )
