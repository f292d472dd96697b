"""XLA compile settings shared by training and evaluation."""

from __future__ import annotations

from typing import Any


def compiler_options(fast: bool) -> dict[str, Any] | None:
    """``jax.jit(compiler_options=...)``: with ``fast``, XLA's backend optimisation off
    (LLVM at -O0). Compiling takes about half as long, running 2-3x longer: for jobs
    where compiling is nearly all the work (smoke tests, the tiny preset)."""
    return {"xla_backend_optimization_level": 0} if fast else None
