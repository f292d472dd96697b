"""The tabular algorithms (mfax/solvers/), the crowd-ring game and the generic tabular game.

Sizes are small so that each solve compiles and runs in a few seconds; several
settings share one compile through the solvers' vmapped sweeps.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import mfax
from mfax.cli import app
from mfax.games import make_tabular_game
from mfax.solvers import deterministic_error, solver_settings

ALGORITHMS = [
    "fp",
    "fp_damped",
    "omd",
    "momd",
    "boltzmann",
    "boltzmann_damped",
    "bpi",
    "prior_descent",
]


def rel(sol):
    e = np.asarray(sol.exploitability, dtype=float)
    return e / e[..., :1]


@pytest.fixture(scope="module")
def ring():
    return mfax.make_game("crowd_ring")  # S = 10, T = 10, undiscounted


@pytest.fixture(scope="module")
def omd_sweep(ring):
    # one compile for three learning rates: tiny, moderate, good
    return mfax.solve_tabular(ring, 100, "omd", learning_rate=[1e-6, 0.3, 3.0])


def test_registry_lists_every_algorithm():
    assert mfax.list_solvers() == ALGORITHMS
    assert solver_settings("omd") == {"learning_rate": 1.0}
    assert solver_settings("fp") == {}


# --- the congestion game: the unbiased algorithms reach 1e-3 of the uniform policy's ------
@pytest.mark.parametrize(
    "algorithm, iterations, settings",
    [
        ("fp", 1000, {}),
        ("momd", 100, dict(temperature=1 / 3)),
        ("prior_descent", 100, dict(temperature=0.3)),
    ],
)
def test_algorithm_reaches_1e_3_of_uniform_on_crowd_ring(ring, algorithm, iterations, settings):
    sol = mfax.solve_tabular(ring, iterations, algorithm, **settings)
    e = np.asarray(sol.exploitability)
    uniform = mfax.evaluate_policy(ring, mfax.uniform_policy(ring), jax.random.PRNGKey(0))
    assert e[0] == pytest.approx(float(uniform.exploitability), rel=1e-5)
    assert e.shape == (iterations + 1,) and np.all(e >= 0)
    assert e[-1] < 1e-3 * e[0]
    # the returned table is a valid policy whose exploitability is the last entry
    np.testing.assert_allclose(np.asarray(sol.policy).sum(-1), 1.0, atol=1e-5)
    again = mfax.evaluate_policy(ring, sol.policy, jax.random.PRNGKey(1))
    assert float(again.exploitability) == pytest.approx(e[-1], rel=1e-3, abs=1e-6)


def test_omd_learning_rate(ring, omd_sweep):
    r = rel(omd_sweep)
    assert r.shape == (3, 101) and omd_sweep.policy.shape == (3, 10, 10, 3)
    # a tiny step barely moves off the uniform policy
    np.testing.assert_allclose(np.asarray(omd_sweep.policy[0]), 1 / 3, atol=1e-4)
    assert r[0, -1] > 0.999
    # a moderate one decreases monotonically on this monotone game
    assert np.all(np.diff(r[1]) <= 1e-6) and r[1, -1] < 0.05
    # a good one reaches 1e-3 of the uniform policy's exploitability
    assert r[2, -1] < 1e-3


def test_omd_keeps_converging_over_thousands_of_iterations():
    # OMD's running sum of Q grows like k * Q; kept raw in float32 its differences (all
    # the softmax reads) drowned in rounding after a few thousand iterations and the
    # exploitability climbed back to 1e-3 of uniform here (it is 7e-6 with the shift)
    g = mfax.make_game("crowd_ring", num_states=100, horizon=10)
    e = np.asarray(mfax.solve_tabular(g, 6000, "omd", learning_rate=1.0).exploitability)
    assert e[-1] < 1e-4 * e[0], e[-1] / e[0]
    assert e[-1] <= e[999]


def test_fixed_rate_algorithms_level_off_at_their_rate(ring):
    """A fixed mixing rate keeps the iterates oscillating around the equilibrium by about
    that rate: exploitability falls to a floor, lower for a smaller rate."""
    fp = rel(mfax.solve_tabular(ring, 1000, "fp_damped", damping=[0.1, 0.01]))
    assert fp[1, -100:].mean() < 2e-3 and fp[0, -100:].mean() > 3 * fp[1, -100:].mean()
    bz = rel(
        mfax.solve_tabular(ring, 1000, "boltzmann_damped", temperature=0.01, damping=[0.1, 0.01])
    )
    assert bz[1, -1] < 1e-2 and bz[0, -1] > bz[1, -1]


# --- a two-state game with a closed-form equilibrium -------------------------------------
C, KAPPA = 1.0, 0.2
P_NASH = (C - KAPPA) / (2 * C)  # 0.4


@pytest.fixture(scope="module")
def two_state():
    """Everybody starts in state 0; switching (action 1) costs KAPPA at t = 0; at t = 1 each
    state costs C times its crowd.  A share p switches: indifference C (1 - p) = C p + KAPPA."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = P[1, 0, 1] = P[0, 1, 1] = P[1, 1, 0] = 1.0
    return make_tabular_game(
        [1.0, 0.0],
        lambda t, s, a, mu: jnp.where(t == 0, -KAPPA * a, -C * mu[s]),
        horizon=2,
        transitions=P,
        discount=1.0,
        name="two_state",
    )


def boltzmann_share(tau):
    """The Boltzmann equilibrium p = sigmoid((C (1 - 2p) - KAPPA) / tau), by bisection."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        p = 0.5 * (lo + hi)
        if p - 1 / (1 + math.exp(-(C * (1 - 2 * p) - KAPPA) / tau)) > 0:
            hi = p
        else:
            lo = p
    return p


@pytest.mark.parametrize(
    "algorithm, settings, target, tol",
    [
        ("fp", {}, P_NASH, 5e-3),
        ("fp_damped", dict(damping=0.05), P_NASH, 1e-2),
        ("omd", {}, P_NASH, 1e-4),
        ("momd", {}, P_NASH, 1e-4),
        ("prior_descent", {}, P_NASH, 1e-4),
        ("boltzmann", dict(temperature=1.0), boltzmann_share(1.0), 1e-4),
        ("bpi", dict(temperature=1.0), boltzmann_share(1.0), 1e-4),
        ("boltzmann_damped", dict(temperature=0.05), boltzmann_share(0.05), 1e-3),
    ],
)
def test_limit_matches_the_closed_form(two_state, algorithm, settings, target, tol):
    sol = mfax.solve_tabular(two_state, 200, algorithm, **settings)
    share = float(sol.policy[0, 0, 1])  # t = 0, state 0, switch
    assert share == pytest.approx(target, abs=tol)
    # the biased (softmax) limits approach the Nash share as the temperature falls
    assert abs(boltzmann_share(0.05) - P_NASH) < 0.01 < abs(boltzmann_share(1.0) - P_NASH)
    if target == P_NASH and tol <= 1e-4:
        assert float(sol.exploitability[-1]) < 1e-5


def test_sweep_equals_separate_solves(ring, omd_sweep):
    single = mfax.solve_tabular(ring, 100, "omd", learning_rate=3.0)
    np.testing.assert_allclose(
        np.asarray(omd_sweep.exploitability[2]),
        np.asarray(single.exploitability),
        rtol=1e-4,
        atol=1e-4,
    )
    # (vmapped float32 arithmetic may be reassociated: equal to rounding, amplified by the
    # early oscillations of a large step)
    np.testing.assert_allclose(
        np.asarray(omd_sweep.policy[2]), np.asarray(single.policy), atol=1e-3
    )


# --- the generic tabular game reproduces the built-in beach bar --------------------------
def beach_bar_as_arrays(game):
    agg, mu0 = game.reset(jax.random.PRNGKey(0))
    idx, prob = game.kernel(agg, mu0)
    bar, S, m, ca = (
        game.params.bar_location,
        game.num_states,
        game.params.max_action,
        game.params.crowd_aversion,
    )

    def reward(t, s, a, mu):  # docs/games.md#beach_bar_1d without common noise
        return (
            -jnp.abs(bar - s).astype(jnp.float32)
            - jnp.abs(a - m).astype(jnp.float32) / S
            - ca * jnp.log(mu[s] + 1e-8)
        )

    return np.asarray(mu0), np.asarray(idx), np.asarray(prob), reward


def test_tabular_game_reproduces_beach_bar():
    bar = mfax.make_game(
        "beach_bar_1d",
        num_states=21,
        horizon=8,
        common_noise=False,
        bar_location=7,
        crowd_aversion=1.0,
    )
    mu0, idx, prob, reward = beach_bar_as_arrays(bar)
    dense = np.zeros((21, 11, 21))
    np.add.at(dense, (np.arange(21)[:, None, None], np.arange(11)[None, :, None], idx), prob)
    rows = make_tabular_game(mu0, reward, 8, kernel_indices=idx, kernel_probs=prob)
    full = make_tabular_game(mu0, reward, 8, dense)
    assert full.kernel_size <= idx.shape[-1]  # clipped duplicates merge into one successor
    policy = mfax.policies.random_policy(bar, jax.random.PRNGKey(3))
    ref = mfax.evaluate_policy(bar, policy, jax.random.PRNGKey(0))
    for game, rtol in ((rows, 1e-6), (full, 1e-5)):
        got = mfax.evaluate_policy(game, policy, jax.random.PRNGKey(0))
        for name in (
            "exploitability",
            "policy_return",
            "best_response_return",
            "policy_value",
            "best_response_value",
        ):
            np.testing.assert_allclose(
                np.asarray(getattr(got, name)),
                np.asarray(getattr(ref, name)),
                rtol=rtol,
                atol=1e-5,
                err_msg=name,
            )
        np.testing.assert_allclose(
            np.asarray(got.trajectory.mu), np.asarray(ref.trajectory.mu), atol=1e-6
        )


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(initial_distribution=[0.5, 0.4]), "initial_distribution"),
        (dict(transitions=np.ones((2, 1, 3)) / 3), "transitions has shape"),
        (dict(transitions=np.full((2, 1, 2), 0.4)), "sums to 0.8"),
        (dict(transitions=np.array([[[1.5, -0.5]], [[0.0, 1.0]]])), "negative probability"),
        (dict(reward=np.zeros((3, 1))), "reward has shape"),
        (dict(reward=lambda t, s, a, mu: mu), "must return a scalar"),
        (
            dict(reward=lambda t, s, a, mu: mu[s] + undefined_name),  # noqa: F821
            "reward(t, state, action, mu) failed",
        ),
        (dict(horizon=0), "horizon = 0"),
        (dict(discount=1.5), "discount = 1.5"),
        (
            dict(transitions=None, kernel_indices=[[[0]], [[2]]], kernel_probs=[[[1.0]], [[1.0]]]),
            "kernel_indices must be integers in 0..1",
        ),
        (dict(kernel_indices=[[[0]], [[1]]], kernel_probs=[[[1.0]], [[1.0]]]), "not both"),
    ],
)
def test_tabular_game_errors_name_the_input(kwargs, needle):
    args = dict(
        initial_distribution=[0.5, 0.5],
        reward=np.zeros((2, 1)),
        horizon=3,
        transitions=np.eye(2)[:, None, :],
    )
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        make_tabular_game(**args)
    assert needle in str(err.value)


# --- bad settings -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, needles",
    [
        (dict(algorithm="omd", learning_rate=-1.0), ["learning_rate", "-1", "> 0"]),
        (dict(algorithm="omd", learning_rate=[1.0, float("nan")]), ["learning_rate", "nan"]),
        (dict(algorithm="omd", step=1.0), ["unknown setting 'step'", "learning_rate"]),
        (dict(algorithm="fp", damping=0.5), ["unknown setting 'damping'", "none"]),
        (dict(algorithm="fp_damped", damping=0.0), ["damping = 0", "(0, 1]"]),
        (dict(algorithm="fp_damped", damping=1.5), ["damping = 1.5"]),
        (dict(algorithm="boltzmann", temperature="hot"), ["temperature = 'hot'"]),
        (
            dict(algorithm="prior_descent", prior_update_every=0),
            ["prior_update_every = 0", "integer >= 1"],
        ),
        (dict(algorithm="prior_descent", prior_update_every=[1, 2]), ["cannot be swept"]),
        (dict(algorithm="momd", temperature=[1.0, 2.0], alpha=[0.5, 0.6, 0.7]), ["one length"]),
        (dict(algorithm="sgd"), ["unknown algorithm 'sgd'", "omd"]),
        (dict(num_iterations=0), ["num_iterations = 0", "integer >= 1"]),
        (dict(gamma=0.0), ["gamma = 0.0"]),
    ],
)
def test_bad_settings_are_clear_errors(ring, call, needles):
    call = {"num_iterations": 5, **call}
    with pytest.raises(ValueError) as err:
        mfax.solve_tabular(ring, **call)
    for needle in needles:
        assert needle in str(err.value)
    with pytest.raises(ValueError, match="gamma="):
        mfax.solve_tabular(ring, 5, 0.9)  # the old third positional argument


def test_deterministic_hint_is_generic():
    assert mfax.make_game("beach_bar_1d").params.deterministic_hint() == {
        "common_noise": "False",
        "bar_location": "<int>",
    }
    assert mfax.make_game("crowd_ring").params.deterministic_hint() == {}
    with pytest.raises(ValueError, match="common_noise"):
        mfax.make_game("crowd_ring", common_noise=True)


def test_cli_solve_algorithms():
    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "solve",
            "--game",
            "crowd_ring",
            "--algo",
            "omd",
            "--setting",
            "learning_rate=3",
            "--iterations",
            "100",
            "--num-envs",
            "1",
        ],
    )
    assert out.exit_code == 0, out.output
    final = float(out.output.split("final exploitability")[1].split()[0])
    uniform = float(out.output.split("uniform policy exploitability")[1].split()[0])
    assert 0 <= final < 1e-3 * uniform
    out = runner.invoke(app, ["solve", "--game", "crowd_ring", "--algo", "nope"])
    assert out.exit_code != 0 and "nope" in out.output and "prior_descent" in out.output
    out = runner.invoke(
        app, ["solve", "--game", "crowd_ring", "--algo", "omd", "--setting", "learning_rate=-2"]
    )
    assert out.exit_code != 0 and "learning_rate = -2" in out.output
    # the advice for a random game is the game's own, not the beach bar's
    msg = str(deterministic_error(mfax.make_game("linear_quadratic", num_states=11, horizon=3)))
    assert "common_noise=False" in msg and "bar_location" not in msg
    msg = str(deterministic_error(mfax.make_game("beach_bar_1d", common_noise=False)))
    assert "bar_location=None" in msg and "bar_location=<int>" in msg
