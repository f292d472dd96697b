"""The exploitability bracket for continuous common noise (mfax/noise_bracket.py,
docs/algorithms.md#a-bracket-for-continuous-noise): ordering, collapse without noise,
an independent recomputation of the response's gain, reproducibility, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfax
from mfax.noise_bracket import bracket, fit_response, response_gain, reward_reads_next_noise
from mfax.policies import MeanFieldPolicy, as_policy

KEY = jax.random.PRNGKey(3)
SMALL = {"num_wealth": 12, "num_income": 3, "num_actions": 5, "horizon": 6}
E, FIT = 12, 32  # evaluation and fit paths (few: the tests check structure, not tightness)


@pytest.fixture(scope="module")
def noisy():
    return mfax.make_game("macro", nu=0.3, **SMALL)  # large shocks: a visible bracket


def uniform(game):
    return np.full((game.num_states, game.num_actions), 1.0 / game.num_actions, np.float32)


def _rate_apply(params, carry, obs, t):
    low, high = params
    w = jax.nn.sigmoid(10 * (obs[0] - 0.1))
    return w * high + (1 - w) * low, carry


def rate_policy(game, tables=None):
    """Reads the interest rate (one table when it is low, another when high), so the mean
    field moves with the common noise; one compiled evaluation serves all ``tables``."""
    rng = np.random.default_rng(0)
    if tables is None:
        tables = [rng.dirichlet(np.ones(game.num_actions), size=game.num_states) for _ in range(2)]
    return MeanFieldPolicy(_rate_apply, tuple(jnp.asarray(t, jnp.float32) for t in tables))


@pytest.fixture(scope="module")
def rate_result(noisy):
    pol = rate_policy(noisy)
    return pol, mfax.evaluate_policy(
        noisy, pol, KEY, E, noise="sampled", best_response="adapted", fit_paths=FIT
    )


def test_bracket_is_ordered_finite_and_upper_is_hindsight(noisy, rate_result):
    pol, r = rate_result
    lo, up = float(r.exploitability_lower), float(r.exploitability_upper)
    lo_se, up_se = float(r.exploitability_lower_se), float(r.exploitability_upper_se)
    assert all(np.isfinite([lo, up, lo_se, up_se])) and lo_se > 0 and up_se > 0
    assert lo <= up + 1e-5 * abs(up)
    assert r.noise == "sampled" and r.best_response == "hindsight"  # what exploitability is
    assert float(r.exploitability) == up
    # the upper bound is the default (hindsight) evaluation on the same key's paths
    h = mfax.evaluate_policy(noisy, pol, KEY, E)
    np.testing.assert_allclose(up, float(h.exploitability), rtol=1e-5)
    np.testing.assert_allclose(
        up_se, float(np.std(h.per_env_exploitability, ddof=1)) / np.sqrt(E), rtol=1e-4
    )


def test_each_path_gain_is_below_hindsight_and_recomputes(noisy, rate_result):
    """Path by path the response gains at most the hindsight best response; its gain is
    recomputed here from its actions by plain backward induction (float64 numpy)."""
    pol, _ = rate_result
    gamma = noisy.default_discount
    h, b = bracket(noisy, as_policy(pol, noisy), KEY, E, gamma, FIT)
    up, lo = np.asarray(b.per_env_upper), np.asarray(b.per_env_lower)
    assert np.all(lo <= up + 1e-4 * np.abs(up)) and np.any(lo < up - 1e-3)
    traj = h.trajectory
    idx, prob = (
        np.asarray(x, np.float64)
        for x in jax.jit(jax.vmap(jax.vmap(noisy.kernel)))(traj.aggregate, traj.mu)
    )
    idx = idx.astype(np.int64)
    reward, probs = np.asarray(traj.reward, np.float64), np.asarray(traj.policy, np.float64)
    act = np.asarray(b.response_actions)
    T, _, S = act.shape
    w = v = np.zeros((E, S))
    for t in reversed(range(T)):
        ew, ev = _expect(w, idx[t], prob[t]), _expect(v, idx[t], prob[t])
        w = np.take_along_axis(reward[t] + gamma * ew, act[t][..., None], -1)[..., 0]
        v = np.sum(probs[t] * (reward[t] + gamma * ev), -1)
    mu0 = np.asarray(traj.mu0, np.float64)
    np.testing.assert_allclose(lo, np.sum(mu0 * (w - v), -1), rtol=1e-3, atol=1e-3)


def test_response_reads_only_the_present(noisy, rate_result):
    """Replacing every path's future (after t0) by another path's leaves the response's
    actions up to t0 unchanged: it does not anticipate."""
    pol, _ = rate_result
    gamma = noisy.default_discount
    h, _ = bracket(noisy, as_policy(pol, noisy), KEY, E, gamma, FIT)
    traj, t0 = h.trajectory, 2
    fit = jax.jit(fit_response, static_argnums=(0, 2))(noisy, traj, gamma)  # any will do
    gain = jax.jit(response_gain, static_argnums=(0, 2))

    def other_future(x):
        if x.shape[0] == traj.mu.shape[0]:  # [T, E, ...]: times after t0 from path e - 1
            return x.at[t0 + 1 :].set(jnp.roll(x[t0 + 1 :], 1, axis=1))
        return jnp.roll(x, 1, axis=0)  # mu_final [E, S]

    _, acts = gain(noisy, traj, gamma, fit)
    _, acts_other = gain(noisy, jax.tree.map(other_future, traj), gamma, fit)
    np.testing.assert_array_equal(acts[: t0 + 1], acts_other[: t0 + 1])
    assert np.any(np.asarray(acts[t0 + 1 :]) != np.asarray(acts_other[t0 + 1 :]))


def test_a_reward_that_reads_the_next_draw_is_detected(noisy, rate_result):
    """The greedy response reads r_t when acting at t: macro's reward reads only t, the
    beach bar's reads whether the bar closes at t + 1 (so a bracket there would cheat)."""
    pol, _ = rate_result
    h, _ = bracket(noisy, as_policy(pol, noisy), KEY, E, noisy.default_discount, FIT)
    assert float(reward_reads_next_noise(noisy, h.trajectory)) < 1e-6  # float noise only
    bar = mfax.make_game("beach_bar_1d", num_states=7, horizon=4, max_action=1, bar_location=3)
    traj = mfax.rollout(bar, uniform(bar), KEY, 8)
    assert float(reward_reads_next_noise(bar, traj)) > 1e-3


def _expect(values, idx, prob):
    """``E[values(s')]`` per (env, state, action): ``values[E, S]``, ``idx, prob[E, S, A, K]``."""
    env = np.arange(values.shape[0])[:, None, None, None]
    return np.sum(prob * values[env, idx], -1)


def test_uniform_policy_is_beaten_by_the_response(noisy):
    pol = rate_policy(noisy, [uniform(noisy)] * 2)
    r = mfax.evaluate_policy(
        noisy, pol, KEY, E, noise="sampled", best_response="adapted", fit_paths=FIT
    )
    lo, se = float(r.exploitability_lower), float(r.exploitability_lower_se)
    assert lo >= -2 * se and lo > 0.5 * float(r.exploitability_upper)


def test_without_common_noise_the_bracket_is_the_exact_exploitability():
    game = mfax.make_game("macro", common_noise=False, **SMALL)
    assert game.noise.finite  # evaluate_policy takes the exact tree; call the bracket itself
    h, b = bracket(game, as_policy(uniform(game), game), KEY, 4, game.default_discount, 4)
    exact = float(
        mfax.evaluate_policy(
            game, uniform(game), KEY, noise="exact", best_response="adapted"
        ).exploitability
    )
    np.testing.assert_allclose([float(b.lower), float(b.upper)], [exact, exact], rtol=2e-6)
    assert float(b.lower_se) < 1e-5 * exact and float(b.upper_se) < 1e-5 * exact
    # the greedy response is then the best response itself, state by state
    np.testing.assert_array_equal(b.response_actions, h.best_response_actions)


def test_same_key_same_bits_other_key_other_paths(noisy, rate_result):
    pol, r = rate_result
    again = mfax.evaluate_policy(
        noisy, pol, KEY, E, noise="sampled", best_response="adapted", fit_paths=FIT
    )
    for name in (
        "exploitability_lower",
        "exploitability_lower_se",
        "exploitability_upper",
        "exploitability_upper_se",
    ):
        assert (
            np.asarray(getattr(again, name)).tobytes() == np.asarray(getattr(r, name)).tobytes()
        ), name
    other = mfax.evaluate_policy(
        noisy,
        pol,
        jax.random.PRNGKey(4),
        E,
        noise="sampled",
        best_response="adapted",
        fit_paths=FIT,
    )
    assert float(other.exploitability_lower) != float(r.exploitability_lower)


def test_finite_noise_leaves_the_bracket_empty():
    game = mfax.make_game("linear_quadratic", num_states=7, horizon=3)
    r = mfax.evaluate_policy(game, uniform(game), KEY, noise="exact", best_response="adapted")
    assert (
        r.best_response == "adapted"
        and r.exploitability_lower is None
        and r.exploitability_upper is None
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_envs": 1}, r"num_envs = 1 is not allowed for the exploitability bracket"),
        ({"num_envs": 4, "fit_paths": 1}, r"fit_paths = 1 is not allowed"),
        ({"num_envs": 4, "fit_paths": 2.5}, r"fit_paths = 2.5 is not allowed"),
    ],
)
def test_bad_sizes_are_refused(noisy, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mfax.evaluate_policy(
            noisy, uniform(noisy), KEY, noise="sampled", best_response="adapted", **kwargs
        )
