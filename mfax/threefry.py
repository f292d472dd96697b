"""JAX's random-bit hash on CPU as straight-line code instead of a loop.

JAX lowers its Threefry-2x32 hash (every ``jax.random`` draw) on CPU as a
``fori_loop`` of five steps, and unrolled on every other backend. On XLA:CPU
each step of that loop runs as a few tiny kernels, one after another, and
every draw's loop is compiled as separate functions. mfax's programs draw at
every step of an episode (sampled agents' actions, minibatch permutations)
and once per weight matrix at initialisation, so the loops cost both compile
time and run time (docs/PERFORMANCE.md, "Random bits without a loop").

`use_unrolled_threefry` registers JAX's own unrolled lowering for CPU too. The
bits are the same (the same uint32 arithmetic in the same order;
``tests/test_threefry.py`` checks them against the hash's published test
vectors and a NumPy reference). It is called when `mfax.games.base` is
imported, i.e. before any mfax program is traced, and affects every program
lowered in the process afterwards. Should a JAX release drop the private rule
it relies on, JAX's default stays in place.
"""

from __future__ import annotations

from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir


def use_unrolled_threefry() -> bool:
    """Lower ``threefry2x32`` on CPU unrolled; returns whether the rule was found."""
    try:
        from jax._src.random.threefry2x32 import _threefry2x32_lowering_rule as unrolled
    except ImportError:  # a JAX without that private rule: keep its default
        return False
    mlir.register_lowering(threefry2x32_p, unrolled, platform="cpu")
    return True


UNROLLED = use_unrolled_threefry()
