"""Tabular solvers on the exact common-noise tree (`solve_tabular(..., noise="exact")`):
the policy reacts to the noise drawn so far, the exploitability is the exact adapted one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfax
from mfax.policies import MeanFieldPolicy

#: the beach bar of tests/test_exact_noise.py: bars 2..6 x open/closed = 10 paths
BAR = {"num_states": 9, "horizon": 6, "max_action": 2, "crowd_aversion": 0.5}


@pytest.fixture(scope="module")
def bar():
    return mfax.make_game("beach_bar_1d", **BAR)


def path_policy(game, paths):
    """A tree policy ``[T, P, S, A]`` as an ordinary policy that reads the bar and its
    state from the observation (so `evaluate_policy` scores it by its own rollout): at
    each t it plays the table of the path with that bar and that bar state; before the
    coin is drawn both paths of a bar hold the same table (adapted), so either serves."""
    bars = jnp.asarray(paths.values["bar"], jnp.float32)
    zs = jnp.asarray(paths.values["z"], jnp.float32)
    S = game.num_states

    def apply(table, carry, obs, t):
        b, z = jnp.round(S * (1.0 - obs[2])), obs[1]
        p = jnp.argmax((bars == b) & (zs == z))
        return table[jnp.minimum(t, game.horizon - 1), p], carry

    return apply


def test_omd_on_the_tree_reaches_the_adapted_equilibrium(bar):
    sol = mfax.solve_tabular(bar, 40, "omd", noise="exact", learning_rate=1.0)
    e = np.asarray(sol.exploitability, float)
    P = 10
    assert sol.policy.shape == (6, P, 9, 5) and sol.paths.weight.shape == (P,)
    # scored by evaluate_policy through its own rollout (one compile for both tables)
    apply = path_policy(bar, sol.paths)

    def adapted(table):
        policy = MeanFieldPolicy(apply, jnp.asarray(table))
        ev = mfax.evaluate_policy(
            bar, policy, jax.random.PRNGKey(0), noise="exact", best_response="adapted"
        )
        return float(ev.exploitability)

    assert e[0] == pytest.approx(adapted(np.full(sol.policy.shape, 0.2)), rel=1e-5)
    assert e[0] == pytest.approx(7.578627, rel=1e-5)  # the uniform policy's, measured
    assert np.all(e >= 0)
    assert e[-1] < 3e-3 * e[0]  # measured: 2.5e-2 after 10, 1.2e-3 after 40, 4.7e-5 after 100
    # adapted: equal tables on the paths that share the draws known at t
    policy, node = np.asarray(sol.policy), sol.paths.node
    for t in range(bar.horizon):
        for n in np.unique(node[t]):
            same = policy[t, node[t] == n]
            np.testing.assert_array_equal(same, np.broadcast_to(same[:1], same.shape))
    # before the coin (t < 3) the two paths of a bar play alike; after it they differ
    assert not np.allclose(policy[4, 0], policy[4, 1], atol=1e-3)
    assert adapted(sol.policy) == pytest.approx(e[-1], rel=1e-3, abs=1e-5)


@pytest.mark.slow
def test_fictitious_play_on_the_tree(bar):
    e = np.asarray(mfax.solve_tabular(bar, 40, "fp", noise="exact").exploitability, float)
    assert np.all(e >= 0) and e[-1] < 2e-2 * e[0]  # measured 3.9e-2 after 10, 2.2e-3 after 100


@pytest.mark.parametrize(
    "game, kwargs, needles",
    [
        ("bar", dict(), ["deterministic", "noise='exact'", "10 paths", "bar at t = 0"]),
        ("bar", dict(noise="exact", max_paths=4), ["10 common-noise paths", "max_paths = 4"]),
        ("bar", dict(noise="tree"), ["noise = 'tree'", "'exact'"]),
        ("macro", dict(noise="exact"), ["'macro'", "cannot be enumerated", "common_noise=False"]),
        ("macro", dict(), ["common_noise=False", "noise='exact' is not possible"]),
    ],
)
def test_noise_errors_name_the_game_and_what_is_allowed(bar, game, kwargs, needles):
    g = bar if game == "bar" else mfax.make_game("macro", num_wealth=10, horizon=4)
    with pytest.raises(ValueError) as err:
        mfax.solve_tabular(g, 3, **kwargs)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


@pytest.mark.slow
def test_cli_solves_on_the_tree():
    from typer.testing import CliRunner

    from mfax.cli import app

    args = ["solve", "--game", "beach_bar_1d", "--noise", "exact", "--algo", "omd"]
    for k, v in BAR.items():
        args += ["--param", f"{k}={v}"]
    out = CliRunner().invoke(app, args + ["--iterations", "40"])
    assert out.exit_code == 0, out.output
    final = float(out.output.split("final exploitability")[1].split()[0])
    uniform = float(out.output.split("uniform policy exploitability")[1].split()[0])
    assert uniform == pytest.approx(7.578627, rel=1e-5)
    assert 0 <= final < 3e-3 * uniform
    out = CliRunner().invoke(app, args[:-2] + ["--noise", "tree"])
    assert out.exit_code != 0 and "expected none or exact" in out.output
