"""XLA compile settings shared by training and evaluation."""

from __future__ import annotations

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


# What a trainer's `init` (initialisers, optimiser state, first rollout keys) is compiled
# with when not `fast_compile`: it runs once, so its compile time is all it costs. On CPU
# XLA's older emitters compile it in 30-60% less time and give the same bits
# (tests/test_fast_compile.py); other backends ignore the option.
INIT_OPTIONS: dict[str, Any] = {"xla_cpu_use_fusion_emitters": False}


def compiler_options(fast: bool) -> dict[str, Any] | None:
    """``jax.jit(compiler_options=...)`` for a program compiled with ``fast_compile``."""
    return dict(FAST_COMPILE_OPTIONS) if fast else None


def init_compiler_options(fast: bool) -> dict[str, Any]:
    """``jax.jit(compiler_options=...)`` for a trainer's one-off `init` program."""
    return dict(FAST_COMPILE_OPTIONS) if fast else dict(INIT_OPTIONS)
