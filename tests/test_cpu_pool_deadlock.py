"""mfax never hands XLA's CPU runtime a batched LAPACK call (docs/ERRORS.md).

jaxlib 0.10's CPU LAPACK kernels split a batch of matrices into tasks on XLA's
intra-op thread pool and block the calling pool thread until those tasks end.
When as many such calls as the pool has threads run at once (two on a 2-core
machine: the GRU's three orthogonal recurrent kernels are independent QRs),
every pool thread waits on tasks that no thread is left to run, and the process
hangs at 0% CPU for ever. Vmapping ``init`` over seeds produced exactly that:
the vmapped orthogonal initialiser is a batched QR (``num_batch_dims = "1"``),
and a 4-seed RSPG init hung within its first few calls on every try.
``mfax.multiseed.init_seeds`` maps over the seeds instead (one matrix per QR,
the same bits); the adapted bracket's regressions are solved one at a time.
"""

from __future__ import annotations

import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfax
from mfax.algorithms import get_algorithm
from mfax.multiseed import init_seeds
from mfax.noise_bracket import _jitted_bracket
from mfax.policies import as_policy

SMALL = {"hidden": [16], "embed_dim": 8, "gru_hidden": 8, "num_envs": 2, "eval_num_envs": 2}
LAPACK_CALL = re.compile(r"custom_call @(lapack_\w+)\(.*?num_batch_dims = \"(\d+)\"")


def _trainer(algo: str, game: str = "linear_quadratic"):
    A = get_algorithm(algo)
    keys = {"hidden", "embed_dim", "num_envs", "eval_num_envs"}
    if algo in ("rspg", "rippo"):
        keys.add("gru_hidden")
    cfg = A.config_class.from_mapping({k: SMALL[k] for k in keys}, game=game, algo=algo)
    return A.make_train(cfg)


def _lapack_calls(lowered) -> list[tuple[str, int]]:
    return [(name, int(b)) for name, b in LAPACK_CALL.findall(lowered.as_text())]


def _keys(n: int):
    return jax.vmap(jax.random.key)(jnp.arange(n, dtype=jnp.uint32))


@pytest.mark.parametrize("algo", ["rspg", "rippo"])
def test_recurrent_init_over_seeds_factors_one_matrix_at_a_time(algo):
    trainer = _trainer(algo)
    calls = _lapack_calls(jax.jit(init_seeds(trainer)).lower(_keys(3)))
    assert {name for name, _ in calls} >= {"lapack_sgeqrf_ffi"}  # the GRU's orthogonal init
    assert all(batch == 0 for _, batch in calls), calls
    # the check can fail: vmapped, the same init batches its QRs over the seeds
    vmapped = _lapack_calls(jax.jit(jax.vmap(trainer.init)).lower(_keys(3)))
    assert any(batch > 0 for _, batch in vmapped), vmapped


@pytest.mark.parametrize("algo", ["spg", "rspg", "ippo", "rippo", "m_omd"])
def test_training_and_evaluation_over_seeds_call_no_lapack(algo):
    trainer = _trainer(algo)
    state = jax.eval_shape(init_seeds(trainer), _keys(2))
    advance = jax.jit(jax.vmap(trainer.advance, (0, None))).lower(
        state, jax.ShapeDtypeStruct((), jnp.int32)
    )
    evaluate = jax.jit(jax.vmap(trainer.evaluate)).lower(state)
    assert _lapack_calls(advance) == [] and _lapack_calls(evaluate) == []


def test_adapted_bracket_solves_one_regression_at_a_time():
    game = mfax.make_game("beach_bar_1d")
    pol = as_policy(np.full((game.num_states, game.num_actions), 1 / game.num_actions), game)
    run = _jitted_bracket(game, pol.apply, pol.initial_carry, 4, 4, 0.99, False)
    calls = _lapack_calls(run.lower(pol.params, jax.random.key(0)))
    assert {name for name, _ in calls} >= {"lapack_sgetrf_ffi"}  # the ridge regression's solve
    assert all(batch == 0 for _, batch in calls), calls


def test_init_seeds_is_each_seeds_own_init():
    trainer = _trainer("rspg")
    states = jax.jit(init_seeds(trainer))(_keys(3))
    for i in range(3):
        one = jax.jit(trainer.init)(jax.random.key(i))
        for a, b in zip(
            jax.tree_util.tree_leaves(one), jax.tree_util.tree_leaves(states), strict=True
        ):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b)[i])


REPEAT = """
import jax, jax.numpy as jnp
from mfax.algorithms import get_algorithm
from mfax.multiseed import init_seeds
A = get_algorithm("rspg")
trainer = A.make_train(A.config_class.from_mapping({}, game="linear_quadratic", algo="rspg"))
keys = jax.vmap(jax.random.key)(jnp.arange(4, dtype=jnp.uint32))
init = jax.jit(init_seeds(trainer))
for _ in range(100):
    jax.block_until_ready(init(keys))
print("done")
"""


# ~100 s on 2 cores; CI runs it (test_init_seeds_is_each_seeds_own_init stays by default)
@pytest.mark.slow
def test_recurrent_init_over_seeds_runs_to_the_end_again_and_again():
    # vmapped, this loop hung at its first or second call in 3 tries out of 3 (2 cores)
    try:
        out = subprocess.run(
            [sys.executable, "-c", REPEAT], capture_output=True, text=True, timeout=180
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the multi-seed init hung (XLA's CPU thread pool deadlocked)")
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr[-2000:]
