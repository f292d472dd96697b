"""The susceptible-infected game (docs/games.md#susceptible_infected) against a dense numpy
transcription of its definition, MFGLib 0.3.0's numbers on the same game, and the solvers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import mfax
from mfax.cli import app

#: measured with MFGLib 0.3.0 (`Environment.susceptible_infected()`, T = 50): the uniform
#: policy's exploitability, and OnlineMirrorDescent(alpha=1)'s relative to it after 1, 10,
#: 100 iterations (benchmarks/peers/mfglib_side.py)
MFGLIB_UNIFORM = 5.46687126159668
MFGLIB_OMD = {1: 0.8372316801077379, 10: 0.07009104341439844, 100: 0.11804557578548713}


# --- a dense transcription of docs/games.md#susceptible_infected -----------------------------
def dense_kernel(p, mu_infected):
    """``P[s, a, s']``: 0 susceptible, 1 infected; action 0 go out, 1 distance."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 1] = p.infection_rate * mu_infected
    P[0, 0, 0] = 1.0 - P[0, 0, 1]
    P[0, 1, 0] = 1.0
    for a in range(2):
        P[1, a, 0] = p.recovery_rate
        P[1, a, 1] = 1.0 - p.recovery_rate
    return P


def dense_reward(p):
    R = np.zeros((2, 2))
    for s in range(2):
        for a in range(2):
            R[s, a] = -p.infection_cost * (s == 1) - p.distancing_cost * (a == 1)
    return R


def dense_mean_field(p, policy):
    mu = np.zeros((p.horizon + 1, 2))
    mu[0] = [1.0 - p.initial_infected, p.initial_infected]
    for t in range(p.horizon):
        P = dense_kernel(p, mu[t, 1])
        for s in range(2):
            for a in range(2):
                mu[t + 1] += mu[t, s] * policy[t, s, a] * P[s, a]
    return mu


def dense_exploitability(p, policy):
    """Best response return minus the policy's, undiscounted, on the policy's mean field."""
    mu, R = dense_mean_field(p, policy), dense_reward(p)
    v_pi, v_star = np.zeros(2), np.zeros(2)
    for t in reversed(range(p.horizon)):
        P = dense_kernel(p, mu[t, 1])
        q_pi, q_star = R + P @ v_pi, R + P @ v_star
        v_pi, v_star = (policy[t] * q_pi).sum(-1), q_star.max(-1)
    return float(mu[0] @ (v_star - v_pi))


@pytest.fixture(scope="module")
def sis():
    return mfax.make_game("susceptible_infected")


def test_kernel_and_reward_follow_the_formulas(sis):
    p = sis.params
    assert (sis.num_states, sis.num_actions, sis.kernel_size, sis.horizon) == (2, 2, 2, 51)
    assert sis.default_discount == 1.0 and mfax.make_game("sis") == sis
    agg, mu0 = sis.reset(jax.random.PRNGKey(0))
    np.testing.assert_allclose(np.asarray(mu0), [0.4, 0.6])
    for infected in (0.0, 0.3, 0.6, 1.0):
        mu = np.asarray([1.0 - infected, infected], np.float32)
        idx, prob = sis.kernel(agg, mu)
        got = np.zeros((2, 2, 2))
        np.add.at(got, (np.arange(2)[:, None, None], np.arange(2)[None, :, None], idx), prob)
        np.testing.assert_allclose(got, dense_kernel(p, infected), atol=1e-6)
        R = sis.reward(agg, mu, agg, mu)
        np.testing.assert_allclose(np.asarray(R), dense_reward(p))
    # MFGLib's values: infected w.p. 0.81 mu(I) when out, recover w.p. 0.3; costs 0.5 and 1
    np.testing.assert_allclose(dense_kernel(p, 0.5)[0, 0, 1], 0.405)
    np.testing.assert_allclose(dense_reward(p), [[0.0, -0.5], [-1.0, -1.5]])
    # other parameters are used
    q = mfax.make_game("sis", infection_rate=0.5, recovery_rate=0.1, distancing_cost=2.0).params
    np.testing.assert_allclose(dense_kernel(q, 0.4)[0, 0, 1], 0.2)
    idx, prob = mfax.make_game("sis", infection_rate=0.5, recovery_rate=0.1).kernel(
        agg, np.asarray([0.6, 0.4], np.float32)
    )
    np.testing.assert_allclose(np.asarray(prob[:, :, 1]), [[0.2, 0.0], [0.9, 0.9]], atol=1e-6)


def test_mass_and_values_match_the_transcription(sis):
    p = sis.params
    rng = np.random.default_rng(0)
    for _ in range(2):  # random tables (one compile with the uniform one below)
        policy = rng.dirichlet(np.ones(2), size=(p.horizon, 2)).astype(np.float32)
        ev = mfax.evaluate_policy(sis, jnp.asarray(policy), jax.random.PRNGKey(0))
        mu = np.asarray(ev.trajectory.mu[:, 0], float)
        np.testing.assert_allclose(mu.sum(-1), 1.0, atol=1e-6)
        assert mu.min() >= 0
        table = np.asarray(ev.trajectory.policy[:, 0], float)
        np.testing.assert_allclose(mu, dense_mean_field(p, table)[:-1], atol=1e-5)
        assert float(ev.exploitability) == pytest.approx(
            dense_exploitability(p, table), rel=1e-4, abs=1e-5
        )
    uniform = mfax.evaluate_policy(sis, jnp.full((p.horizon, 2, 2), 0.5), jax.random.PRNGKey(0))
    assert float(uniform.exploitability) == pytest.approx(MFGLIB_UNIFORM, rel=1e-6)


def test_omd_iterates_equal_mfglib(sis):
    e = np.asarray(mfax.solve_tabular(sis, 100, "omd", learning_rate=1.0).exploitability, float)
    assert e[0] == pytest.approx(MFGLIB_UNIFORM, rel=1e-6)
    for k, rel in MFGLIB_OMD.items():
        assert e[k] / e[0] == pytest.approx(rel, rel=1e-3)


# measured relative exploitability after 100 iterations: fp 0.090, fp_damped: below,
# omd 0.070, momd 0.13, boltzmann 0.080, boltzmann_damped 0.080, bpi 0.073, prior_descent 0.042
@pytest.mark.parametrize(
    "algorithm, settings, bound",
    [
        ("fp", {}, 0.2),
        ("omd", dict(learning_rate=0.1), 0.2),
        ("momd", dict(temperature=1.0, alpha=0.9), 0.25),
        ("boltzmann", dict(temperature=0.1), 0.2),
        ("boltzmann_damped", dict(temperature=0.1, damping=0.1), 0.2),
        ("bpi", dict(temperature=0.1), 0.2),
        ("prior_descent", dict(temperature=3.0), 0.1),
    ],
)
def test_each_solver_lowers_exploitability(sis, algorithm, settings, bound):
    sol = mfax.solve_tabular(sis, 100, algorithm, **settings)
    e = np.asarray(sol.exploitability, float)
    assert e[0] == pytest.approx(MFGLIB_UNIFORM, rel=1e-6)
    assert np.all(e >= -1e-6) and e[-1] < bound * e[0]
    assert dense_exploitability(sis.params, np.asarray(sol.policy, float)) == pytest.approx(
        e[-1], rel=1e-3, abs=1e-4
    )


def test_damped_fictitious_play_finds_a_pure_equilibrium(sis):
    """The game is not monotone (the infection risk depends on the mean field) and the
    undamped methods stall at 5-15 % of the uniform policy's exploitability; damped
    fictitious play (rate 0.1) lands on an exact pure equilibrium, checked here by the
    independent transcription."""
    sols = mfax.solve_tabular(sis, 1000, "fp_damped", damping=[0.5, 0.1])
    e = np.asarray(sols.exploitability, float)
    assert np.all(e >= 0) and e[0, 100] < 0.05 * e[0, 0]  # rate 0.5: 8.3e-3 after 100
    policy = np.asarray(sols.policy[1], float)
    assert e[1, -1] < 1e-6
    assert dense_exploitability(sis.params, policy) < 1e-5
    np.testing.assert_allclose(policy[:, 1, 0], 1.0, atol=1e-6)  # infected go out (dominant)
    assert np.all((policy[:, 0, 1] < 1e-6) | (policy[:, 0, 1] > 1 - 1e-6))  # pure
    assert policy[-1, 0, 1] < 1e-6  # nobody distances at the last step (no future)
    # a pure deviation at one step of that equilibrium is exploitable
    flipped = policy.copy()
    flipped[5, 0] = flipped[5, 0, ::-1]
    assert dense_exploitability(sis.params, flipped) > 1e-3


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (dict(initial_infected=1.5), "initial_infected"),
        (dict(recovery_rate=-0.1), "recovery_rate"),
        (dict(distancing_cost=-1.0), "distancing_cost"),
        (dict(common_noise=True), "no common noise"),
        (dict(horizon=0), "horizon"),
        (dict(num_states=3), "unknown parameter 'num_states'"),
    ],
)
def test_bad_parameters_are_clear_errors(overrides, needle):
    with pytest.raises(ValueError, match=needle):
        mfax.make_game("susceptible_infected", **overrides)


@pytest.mark.slow
def test_cli_solves_it():
    out = CliRunner().invoke(
        app,
        [
            "solve",
            "--game",
            "sis",
            "--algo",
            "fp_damped",
            "--setting",
            "damping=0.5",
            "--iterations",
            "100",
            "--num-envs",
            "1",
        ],
    )
    assert out.exit_code == 0, out.output
    final = float(out.output.split("final exploitability")[1].split()[0])
    uniform = float(out.output.split("uniform policy exploitability")[1].split()[0])
    assert uniform == pytest.approx(MFGLIB_UNIFORM, rel=1e-5)
    assert 0 <= final < 0.05 * uniform
