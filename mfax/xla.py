"""XLA settings shared by training and evaluation: compile options and CPU threads."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

# What `fast_compile` turns off, for jobs where compiling is nearly all the work (smoke
# tests, the tiny preset); results equal the default build's up to float rounding:
# - XLA's backend optimisation (LLVM at -O0): about half the compile time, iterations
#   2-3x slower;
# - on CPU, XLA's newer MLIR fusion emitters, in favour of its older direct LLVM
#   emitters: another ~2x less compile time on the tiny preset's train jobs (ignored
#   by other backends). Not the default for real runs: their compile time gains less
#   (quick-size RSPG none) and their iterations were not measured to be as fast.
FAST_COMPILE_OPTIONS: dict[str, Any] = {
    "xla_backend_optimization_level": 0,
    "xla_cpu_use_fusion_emitters": False,
}


# XLA's older CPU emitters (its direct LLVM emitters instead of the MLIR fusion
# emitters), for the programs they suit (docs/PERFORMANCE.md, "XLA's older emitters"):
# - a trainer's `init`, which runs once: 30-60% less compile, the same bits
#   (tests/test_fast_compile.py);
# - the evaluations (exploitability, best responses): about half the compile, and at
#   the published sizes they run in 0.7-0.95x the time; values equal up to float
#   rounding.
# Not the training iteration, which they slow (quick beach-bar SPG 1.3x). Other
# backends ignore the option.
OLD_EMITTERS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}


# XLA:CPU hands matrix products to its YNNPACK library, by default fused with the
# elementwise operations and reductions around them into one library call. In the
# structural learners' training step (SPG / RSPG: the push-forward through the network
# and its gradient) those fused calls are slow on the elementwise parts and the short
# reductions; handing over each product alone, the rest to XLA's own kernels, runs the
# step in 0.71-0.95x the time (docs/PERFORMANCE.md, "Matrix products alone to the
# library"). The model-free learners' steps run 1.07-1.25x slower with it, so they keep
# XLA's default. The option is experimental: an XLA that does not know it goes without.
LIBRARY_DOTS_ONLY: dict[str, Any] = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
}


@functools.cache
def known_to_xla(option: str, value: Any) -> bool:
    """Whether the installed XLA accepts compile option ``option=value`` (one tiny
    compilation per process and option)."""
    import jax

    try:
        jax.jit(lambda x: x).lower(0.0).compile(compiler_options={option: value})
    except RuntimeError:  # "No such compile option", or not a valid value
        return False
    return True


def compiler_options(
    fast: bool, *, old_emitters: bool = False, library_dots_only: bool = False
) -> dict[str, Any] | None:
    """``jax.jit(compiler_options=...)``: `FAST_COMPILE_OPTIONS` for a program compiled
    with ``fast_compile``; otherwise `OLD_EMITTERS` and `LIBRARY_DOTS_ONLY` where asked
    for (the latter where XLA knows it), else XLA's defaults (None)."""
    if fast:
        return dict(FAST_COMPILE_OPTIONS)
    options = dict(OLD_EMITTERS) if old_emitters else {}
    if library_dots_only:
        options.update((k, v) for k, v in LIBRARY_DOTS_ONLY.items() if known_to_xla(k, v))
    return options or None


def limit_cpu_threads(threads: int) -> None:
    """Run XLA's CPU computations on ``threads`` threads instead of one per core.

    XLA sizes its CPU thread pool when JAX's CPU backend starts: from ``PJRT_NPROC``,
    else every core the process may use.  Jobs that share the cores (the pipeline's,
    `snakemake --cores N`) each do best on the threads they were given: a pool as large
    as the machine spends CPU on handing work between threads that the other jobs
    needed (docs/PERFORMANCE.md, "One thread per job").  The pool's size also fixes how
    XLA splits some sums, so results with a given ``threads`` do not depend on the
    machine's core count.  Call it before JAX runs anything."""
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads = {threads!r} is not allowed; expected an integer >= 1")
    # JAX has no public "has a backend started?"; its bridge's table of started backends
    bridge = sys.modules.get("jax._src.xla_bridge")
    if getattr(bridge, "_backends", None):
        raise RuntimeError(
            "limit_cpu_threads: JAX's backends have started already, with their own "
            "thread pool; call it before JAX runs anything"
        )
    os.environ["PJRT_NPROC"] = str(threads)
