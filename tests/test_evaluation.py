"""Policy value, best response and exploitability (docs/algorithms.md), checked
against an independent numpy reference and against their defining properties."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import GAMES, np_random_policy, ref_rollout_and_evaluate, small_game

import mfax
from mfax.policies import random_policy


@pytest.mark.parametrize("gamma", [None, 1.0], ids=["published_gamma", "gamma1"])
@pytest.mark.parametrize("name", GAMES)
def test_exploitability_non_negative_for_random_policies(name, gamma):
    game = small_game(name)
    E = 4
    for seed in (0, 1):
        pol = random_policy(game, jax.random.PRNGKey(100 + seed))
        res = mfax.evaluate_policy(game, pol, jax.random.PRNGKey(seed), num_envs=E, gamma=gamma)
        expl, ret, br = (
            float(res.exploitability),
            float(res.policy_return),
            float(res.best_response_return),
        )
        scale = max(1.0, abs(br))
        assert expl >= -1e-6
        assert float(res.exploitability_undiscounted) >= -1e-6
        assert np.asarray(res.per_state_exploitability).min() >= 0.0
        assert np.asarray(res.per_env_exploitability).min() >= 0.0
        assert ret <= br + 1e-6 * scale
        assert (
            float(res.policy_return_undiscounted)
            <= float(res.best_response_return_undiscounted) + 1e-6 * scale
        )
        # a random policy is exploitable, and exploitability = br - policy return
        assert expl > 1e-3
        assert expl == pytest.approx(br - ret, rel=1e-3, abs=1e-4 * scale)
        # V* >= V state by state and time by time
        gap = np.asarray(res.best_response_value) - np.asarray(res.policy_value)
        assert gap.min() >= -1e-5 * max(1.0, np.abs(np.asarray(res.policy_value)).max())
        # the weighting is by mu_0
        mu0 = np.asarray(res.trajectory.mu0)
        np.testing.assert_allclose(
            np.mean(np.sum(mu0 * np.asarray(res.per_state_exploitability), -1)), expl, rtol=1e-5
        )
        np.testing.assert_allclose(
            np.mean(np.sum(mu0 * np.asarray(res.policy_value[0]), -1)), ret, rtol=1e-5
        )
        if gamma == 1.0:
            assert float(res.exploitability_undiscounted) == pytest.approx(expl, rel=1e-5)
            assert float(res.policy_return_undiscounted) == pytest.approx(ret, rel=1e-5)


REF_GAMES = {
    "linear_quadratic": dict(num_states=15, horizon=24),
    "beach_bar_1d": dict(num_states=17, horizon=10),
    "macro": dict(num_wealth=7, num_income=3, num_actions=4, horizon=5),
}


@pytest.mark.parametrize("name", GAMES)
def test_matches_numpy_reference(name):
    """Rollout, V_0, V*_0, exploitability and best actions equal an independent
    dense numpy implementation of docs/games.md + docs/algorithms.md (with common
    noise); discounted (gamma = 0.9) and undiscounted results from one call."""
    game = mfax.make_game(name, **REF_GAMES[name])
    E, gamma = 3, 0.9
    pol = np_random_policy(game, 7).astype(np.float64)
    res = mfax.evaluate_policy(game, pol, jax.random.PRNGKey(6), num_envs=E, gamma=gamma)
    traj = res.trajectory
    z = np.asarray(traj.common_noise, np.float64)  # [T, E], exogenous
    refs = {gamma: [], 1.0: []}
    for e in range(E):
        # z at t = T (only the beach bar's last reward reads it: z_T = z_{T-1} there)
        z_path = np.concatenate([z[:, e], z[-1:, e]])
        bar = int(traj.aggregate.bar[0, e]) if name == "beach_bar_1d" else None
        for g in (gamma, 1.0):
            refs[g].append(ref_rollout_and_evaluate(game, pol, z_path, g, bar=bar))
        ref = refs[gamma][-1]
        mu = np.concatenate([np.asarray(traj.mu[:, e]), np.asarray(traj.mu_final[e])[None]], 0)
        np.testing.assert_allclose(mu, ref["mu"], atol=1e-5)
        scale = max(1.0, np.abs(ref["V0"]).max())
        np.testing.assert_allclose(
            np.asarray(res.policy_value[0, e]), ref["V0"], rtol=1e-4, atol=1e-5 * scale
        )
        np.testing.assert_allclose(
            np.asarray(res.best_response_value[0, e]), ref["Vstar0"], rtol=1e-4, atol=1e-5 * scale
        )
        np.testing.assert_allclose(
            np.asarray(res.per_state_exploitability[e]),
            ref["Vstar0"] - ref["V0"],
            rtol=1e-3,
            atol=1e-4 * scale,
        )
        assert float(res.per_env_exploitability[e]) == pytest.approx(
            ref["exploitability"], rel=1e-3, abs=1e-5 * scale
        )
        # best actions wherever the best one is ahead of the second by more than
        # float error (the terminal step of LQ and macro pays the same for every action)
        clear = ref["qgap"] > 1e-5 * scale
        assert clear[:-1].mean() > 0.5
        got = np.asarray(res.best_response_actions[:, e])
        np.testing.assert_array_equal(got[clear], ref["actions"][clear])
    # the common noise really varies between envs (the test covers it)
    if name == "linear_quadratic":
        assert len(np.unique(z[0])) == 2
    if name == "macro":
        assert np.abs(z[1:]).min() > 0
    for g, suffix in ((gamma, ""), (1.0, "_undiscounted")):
        for key in ("policy_return", "best_response_return", "exploitability"):
            want = np.mean([r[key] for r in refs[g]])
            got = float(getattr(res, key + suffix))
            assert got == pytest.approx(want, rel=1e-4, abs=1e-5), key + suffix
    assert float(res.exploitability) > 1e-3  # not trivially zero


@pytest.mark.parametrize("gamma", [None, 1.0])
def test_best_response_table_is_unexploitable_on_beach_bar(gamma):
    """Without common noise and with a fixed bar, rewards do not depend on the
    mean field: the best response to any policy is an equilibrium."""
    game = mfax.make_game("beach_bar_1d", common_noise=False, bar_location=50)
    T, S, A = game.horizon, game.num_states, game.num_actions
    key = jax.random.PRNGKey(0)
    for pol in (random_policy(game, jax.random.PRNGKey(3)),):
        res = mfax.evaluate_policy(game, pol, key, gamma=gamma)
        assert float(res.exploitability) > 1.0
        br_table = np.asarray(jax.nn.one_hot(res.best_response_actions[:, 0, :], A))
        assert br_table.shape == (T, S, A)
        res_br = mfax.evaluate_policy(game, br_table, key, gamma=gamma)
        assert abs(float(res_br.exploitability)) <= 1e-5
        assert np.abs(np.asarray(res_br.per_state_exploitability)).max() <= 1e-4
        assert float(res_br.policy_return) == pytest.approx(
            float(res.best_response_return), rel=1e-5
        )
        assert float(res_br.best_response_return) == pytest.approx(
            float(res.best_response_return), rel=1e-5
        )
        # the best response moves everybody towards the bar
        mu_T = np.asarray(res_br.trajectory.mu_final[0])
        assert mu_T[45:56].sum() > 0.9


def test_evaluation_is_deterministic_and_depends_on_key_with_common_noise():
    game = mfax.make_game("linear_quadratic")
    pol = random_policy(game, jax.random.PRNGKey(1))
    a = mfax.evaluate_policy(game, pol, jax.random.PRNGKey(5), num_envs=4)
    b = mfax.evaluate_policy(game, pol, jax.random.PRNGKey(5), num_envs=4)
    c = mfax.evaluate_policy(game, pol, jax.random.PRNGKey(7), num_envs=4)
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert not np.array_equal(
        np.asarray(a.per_env_exploitability), np.asarray(c.per_env_exploitability)
    )
    assert not np.array_equal(
        np.asarray(a.trajectory.common_noise), np.asarray(c.trajectory.common_noise)
    )


def test_policy_forms_give_the_same_evaluation():
    game = mfax.make_game("linear_quadratic")
    S, A, T = game.num_states, game.num_actions, game.horizon
    key = jax.random.PRNGKey(2)
    ref = mfax.evaluate_policy(game, np.full((T, S, A), 1.0 / A), key, num_envs=4)
    res = mfax.evaluate_policy(game, lambda obs: jnp.full((S, A), 1.0 / A), key, num_envs=4)
    for f in (
        "exploitability",
        "policy_return",
        "best_response_return",
        "exploitability_undiscounted",
    ):
        assert float(getattr(res, f)) == pytest.approx(
            float(getattr(ref, f)), rel=1e-5, abs=1e-6
        ), f
    np.testing.assert_array_equal(
        np.asarray(res.best_response_actions), np.asarray(ref.best_response_actions)
    )


def test_bad_evaluation_inputs_raise():
    game = mfax.make_game("linear_quadratic", num_states=11, horizon=5)
    uni = np.full((11, 7), 1.0 / 7)
    for g in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="gamma"):
            mfax.evaluate_policy(game, uni, jax.random.PRNGKey(0), gamma=g)
    with pytest.raises(ValueError, match="num_envs"):
        mfax.evaluate_policy(game, uni, jax.random.PRNGKey(0), num_envs=-1)
    with pytest.raises(ValueError, match=r"\(11, 6\)"):
        mfax.evaluate_policy(
            game, uni[:, :6] / uni[:, :6].sum(-1, keepdims=True), jax.random.PRNGKey(0)
        )
