"""The rock-paper-scissors game (docs/games.md#rock_paper_scissors): its formulas, its
closed-form mixed equilibrium, and the solvers that reach it."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfax
from mfax.games.rock_paper_scissors import equilibrium_shares

#: the indifference point of 2c - b = 4a - 2c = 6b - 3a, a + b + c = 1, solved by hand
SHARES = np.asarray([26.0, 20.0, 31.0]) / 77.0
#: measured with MFGLib 0.3.0 (`Environment.rock_paper_scissors()`, T = 1): the uniform
#: policy's exploitability and OnlineMirrorDescent(alpha=0.1)'s relative to it after 1, 10,
#: 100 iterations (benchmarks/peers/mfglib_side.py)
MFGLIB_UNIFORM = 0.3333333730697632
MFGLIB_OMD_01 = {1: 1.0862848655837936, 10: 0.4823746702224409, 100: 0.24230590554405385}


@pytest.fixture(scope="module")
def rps():
    return mfax.make_game("rock_paper_scissors")


def policy_with(shares, horizon=2):
    table = np.full((horizon, 4, 3), 1 / 3, np.float32)
    table[:, :] = shares
    return jnp.asarray(table)


def test_formulas(rps):
    assert (rps.num_states, rps.num_actions, rps.kernel_size, rps.horizon) == (4, 3, 1, 2)
    assert mfax.make_game("rps") == rps and rps.default_discount == 1.0
    agg, mu0 = rps.reset(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(mu0), [1, 0, 0, 0])
    mu = np.asarray([0.1, 0.2, 0.3, 0.4], np.float32)
    idx, prob = rps.kernel(agg, mu)
    dense = np.zeros((4, 3, 4))
    np.add.at(dense, (np.arange(4)[:, None, None], np.arange(3)[None, :, None], idx), prob)
    for s in range(4):
        for a in range(3):
            np.testing.assert_array_equal(dense[s, a], np.eye(4)[1 + a])
    R = np.asarray(rps.reward(agg, jnp.asarray(mu), agg, jnp.asarray(mu)))
    _, r, p, c = mu
    want = [0.0, 2 * c - p, 4 * r - 2 * c, 6 * p - 3 * r]  # MFGLib's formulas
    np.testing.assert_allclose(R, np.repeat(np.asarray(want)[:, None], 3, 1), atol=1e-6)
    with pytest.raises(ValueError, match="initial_distribution"):
        mfax.make_game("rps", initial_distribution=[0.5, 0.5, 0.5, 0.0])


def test_closed_form_equilibrium(rps):
    np.testing.assert_allclose(equilibrium_shares(), SHARES, atol=1e-12)
    key = jax.random.PRNGKey(0)
    at = mfax.evaluate_policy(rps, policy_with(SHARES), key)
    assert float(at.exploitability) < 1e-6
    # every other mix is exploitable; the uniform one by max(earnings) - mean = 1/3
    off = mfax.evaluate_policy(rps, policy_with([0.3, 0.3, 0.4]), key)
    assert float(off.exploitability) > 1e-2
    uniform = mfax.evaluate_policy(rps, policy_with([1 / 3, 1 / 3, 1 / 3]), key)
    assert float(uniform.exploitability) == pytest.approx(1 / 3, rel=1e-6)


@pytest.mark.parametrize(
    "algorithm, settings, share_tol, rel_bound",
    [
        # measured after 1000 iterations: fp 1.2e-2 of the uniform policy's exploitability,
        # omd (learning_rate 0.1) 6.1e-5; a step of 1 or more cycles (not monotone)
        pytest.param("fp", {}, 3e-3, 3e-2, marks=pytest.mark.slow),
        ("omd", dict(learning_rate=0.1), 1e-3, 1e-3),
    ],
)
def test_solvers_reach_the_closed_form(rps, algorithm, settings, share_tol, rel_bound):
    sol = mfax.solve_tabular(rps, 1000, algorithm, **settings)
    e = np.asarray(sol.exploitability, float)
    assert e[0] == pytest.approx(1 / 3, rel=1e-6) and np.all(e >= 0)
    assert e[-1] < rel_bound * e[0]
    np.testing.assert_allclose(np.asarray(sol.policy[0, 0]), SHARES, atol=share_tol)
    if algorithm == "omd":  # MFGLib's mirror descent with the same step: the same iterates
        assert e[0] == pytest.approx(MFGLIB_UNIFORM, rel=1e-6)
        for k, rel in MFGLIB_OMD_01.items():
            assert e[k] / e[0] == pytest.approx(rel, rel=1e-3)
