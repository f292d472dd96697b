"""The tabular reference solver (fictitious play) and the core CLI commands."""

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

import mfax
from mfax.cli import app


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("linear_quadratic", dict(common_noise=False)),
        ("beach_bar_1d", dict(common_noise=False, bar_location=50)),
    ],
)
def test_solver_reaches_one_percent_of_uniform(name, overrides):
    game = mfax.make_game(name, **overrides)
    sol = mfax.solve_tabular(game, num_iterations=20)
    expl = np.asarray(sol.exploitability, dtype=float)
    uniform = mfax.evaluate_policy(game, mfax.uniform_policy(game), jax.random.PRNGKey(0))
    assert expl[0] == pytest.approx(float(uniform.exploitability), rel=1e-4)
    assert expl[-1] < 0.01 * expl[0]
    assert sol.policy.shape == (game.horizon, game.num_states, game.num_actions)
    # the returned table is a valid policy whose exploitability is the last entry
    np.testing.assert_allclose(np.asarray(sol.policy).sum(-1), 1.0, atol=1e-5)
    again = mfax.evaluate_policy(game, sol.policy, jax.random.PRNGKey(1))
    assert float(again.exploitability) == pytest.approx(expl[-1], abs=1e-3 + 1e-4 * expl[0])


def test_solver_on_macro_without_common_noise_decreases_exploitability():
    game = mfax.make_game("macro", common_noise=False, num_wealth=30, horizon=16)
    expl = np.asarray(mfax.solve_tabular(game, num_iterations=30).exploitability)
    assert np.all(expl >= 0)
    assert expl[-1] < 0.02 * expl[0]
    # fictitious play improves on its first best response as it averages
    assert expl[-1] < expl[1]


def test_solver_is_reproducible():
    game = mfax.make_game("linear_quadratic", common_noise=False, num_states=31, horizon=10)
    a = mfax.solve_tabular(game, num_iterations=5)
    b = mfax.solve_tabular(game, num_iterations=5)
    assert np.array_equal(np.asarray(a.policy), np.asarray(b.policy))


@pytest.mark.parametrize(
    "name, overrides, needle",
    [
        ("linear_quadratic", dict(), "common_noise=False"),
        ("beach_bar_1d", dict(common_noise=False), "bar_location"),
    ],
)
def test_solver_rejects_random_games(name, overrides, needle):
    with pytest.raises(ValueError, match=needle):
        mfax.solve_tabular(mfax.make_game(name, **overrides))


def test_solver_rejects_bad_iterations():
    game = mfax.make_game("linear_quadratic", common_noise=False)
    with pytest.raises(ValueError, match="num_iterations"):
        mfax.solve_tabular(game, num_iterations=0)


def test_cli_games_and_solve():
    runner = CliRunner()
    out = runner.invoke(app, ["games"])
    assert out.exit_code == 0
    for name in mfax.list_games():
        assert name in out.output
    out = runner.invoke(
        app,
        [
            "solve",
            "--game",
            "linear_quadratic",
            "--param",
            "common_noise=false",
            "--param",
            "num_states=31",
            "--param",
            "horizon=10",
            "--iterations",
            "5",
            "--num-envs",
            "2",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "uniform policy exploitability" in out.output
    final = float(out.output.split("final exploitability")[1].split()[0])
    uniform = float(out.output.split("uniform policy exploitability")[1].split()[0])
    assert 0 <= final < 0.01 * uniform


def test_cli_solve_reports_bad_parameters():
    out = CliRunner().invoke(
        app, ["solve", "--game", "beach_bar_1d", "--param", "bar_location=500"]
    )
    assert out.exit_code != 0
    assert "bar_location" in out.output and "500" in out.output
