"""The training benchmark's FLOP count (benchmarks/training.py `matmul_flops`): every
step of a scan counted, gradients and vmaps included, against counts made by hand."""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from training import iteration_flops, matmul_flops

from mfax.training import TrainConfig, make_train


def _scanned(x, w):
    def body(c, _):
        return jnp.tanh(c @ w), None

    return jnp.sum(jax.lax.scan(body, x, None, length=10)[0])


@pytest.mark.parametrize(
    "fn, args, expected",
    [
        # 10 steps of [64, 32] @ [32, 32]
        (_scanned, (jnp.ones((64, 32)), jnp.ones((32, 32))), 10 * 2 * 64 * 32 * 32),
        # its gradient in w: the forward, then per step one product for the carry's
        # cotangent and one for w's
        (
            jax.grad(_scanned, 1),
            (jnp.ones((64, 32)), jnp.ones((32, 32))),
            3 * 10 * 2 * 64 * 32 * 32,
        ),
        # a vmap over 3 batches of the same, jitted
        (
            jax.jit(jax.vmap(_scanned, (0, None))),
            (jnp.ones((3, 64, 32)), jnp.ones((32, 32))),
            3 * 10 * 2 * 64 * 32 * 32,
        ),
        # a batched matmul [5, 4, 6] @ [5, 6, 7] and a cond whose dearer branch counts
        (
            lambda a, b: jax.lax.cond(True, lambda: jnp.sum(a @ b), lambda: jnp.sum(a)),
            (jnp.ones((5, 4, 6)), jnp.ones((5, 6, 7))),
            2 * 5 * 4 * 6 * 7,
        ),
    ],
)
def test_matmul_flops_counts_every_step(fn, args, expected):
    assert matmul_flops(jax.make_jaxpr(fn)(*args)) == expected


def test_xla_cost_analysis_counts_a_loop_once():
    """Why the count is ours: XLA's cost analysis counts a scan's body once."""
    args = (jnp.ones((64, 32)), jnp.ones((32, 32)))
    cost = jax.jit(_scanned).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    if not cost or "flops" not in cost:
        pytest.skip("no cost analysis on this backend")
    assert cost["flops"] < 0.2 * matmul_flops(jax.make_jaxpr(_scanned)(*args))


def test_iteration_flops_count_the_networks_forward_once():
    # the rollout recomputes the network in the backward pass (jax.checkpoint): the
    # benchmark counts the algorithm's work, not the recomputation
    cfg = TrainConfig(game="linear_quadratic", algo="spg", hidden=(16,), num_envs=2)
    trainer = make_train(cfg)
    state = trainer.init(jax.random.key(0))
    raw = matmul_flops(jax.make_jaxpr(trainer.iteration)(state, None))
    useful = iteration_flops(trainer)
    assert 0 < useful < raw
    assert matmul_flops(jax.make_jaxpr(trainer.iteration)(state, None)) == raw  # caches restored
