"""The three games against docs/games.md: kernels, resets, rewards,
common noise, observations, and parameter validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import (
    bar_agg,
    dense_kernel,
    lq_agg,
    macro_agg,
    ref_bb_kernel,
    ref_bb_reward,
    ref_grid,
    ref_legal,
    ref_lq_kernel,
    ref_lq_reward,
    ref_macro_kernel,
    ref_macro_parts,
    ref_macro_reward,
)

import mfax
from mfax.games.macro import MacroAggregate
from mfax.policies import random_policy

GAMES = ["linear_quadratic", "beach_bar_1d", "macro"]


def _small(name: str, **kw):
    if name == "macro":
        kw = {"num_wealth": 30, **kw}
    return mfax.make_game(name, **kw)


def _aggs(game, key):
    """A few aggregate states of a game at several times (and common-noise values)."""
    T = game.horizon
    ts = [0, 3, T // 2, min(T - 2, 25), T - 1]
    if game.name == "linear_quadratic":
        return [lq_agg(t, z) for t in ts for z in (-1.0, 0.0, 1.0)]
    if game.name == "beach_bar_1d":
        S = game.num_states
        return [bar_agg(t, z, b) for t in ts for z in (0.0, 1.0) for b in (1, S // 2, S - 2)]
    return [macro_agg(t, z) for t in ts for z in (-0.2, 0.0, 0.3)]


# --------------------------------------------------------------------------
# kernel rows are probability distributions with valid indices
# --------------------------------------------------------------------------
@pytest.mark.parametrize("idio_noise", [True, False])
@pytest.mark.parametrize("name", GAMES)
def test_kernel_rows_are_distributions(name, idio_noise):
    game = _small(name, idio_noise=idio_noise)
    S, A = game.num_states, game.num_actions
    kernel = jax.jit(game.kernel)
    mus = [
        jnp.full((S,), 1.0 / S),
        jnp.asarray(np.random.default_rng(0).dirichlet(np.full(S, 0.3)), jnp.float32),
    ]
    mus.append(jnp.zeros((S,)).at[S - 1].set(1.0))  # everybody at the top of the grid
    for agg in _aggs(game, None):
        for mu in mus:
            idx, prob = kernel(agg, mu)
            idx, prob = np.asarray(idx), np.asarray(prob)
            assert idx.shape == prob.shape == (S, A, game.kernel_size)
            assert np.issubdtype(idx.dtype, np.integer)
            assert idx.min() >= 0 and idx.max() < S
            assert prob.min() >= 0.0
            np.testing.assert_allclose(prob.sum(-1), 1.0, atol=1e-5)
    expected_k = {"linear_quadratic": 7, "beach_bar_1d": 5, "macro": 6}[name]
    assert game.kernel_size == (expected_k if idio_noise else (2 if name == "macro" else 1))


# --------------------------------------------------------------------------
# beach bar
# --------------------------------------------------------------------------
def test_beach_bar_published_sizes():
    g = mfax.make_game("beach_bar_1d")
    assert (g.num_states, g.num_actions, g.horizon) == (101, 11, 30)
    np.testing.assert_array_equal(g.action_values(), np.arange(-5, 6))
    np.testing.assert_allclose(g.params.noise_probs, [0.05, 0.1, 0.7, 0.1, 0.05])
    assert tuple(g.params.noise_atoms) == (-2, -1, 0, 1, 2)


@pytest.mark.parametrize("idio_noise", [True, False])
@pytest.mark.parametrize("bar", [25, 50, 75, 1, 99])
def test_beach_bar_nobody_crosses_or_steps_on_the_bar(bar, idio_noise):
    g = mfax.make_game("beach_bar_1d", idio_noise=idio_noise)
    idx, prob = g.kernel(bar_agg(4, 1.0, bar), jnp.full((101,), 1 / 101))
    idx = np.asarray(idx)
    x = np.arange(101)[:, None, None]
    left, right = np.broadcast_to(x < bar, idx.shape), np.broadcast_to(x > bar, idx.shape)
    # every action and every noise atom: no crossing, no stepping onto the bar
    assert np.all(idx[left] < bar) and np.all(idx[right] > bar)
    # the neighbours of the bar can get no closer than they are
    assert np.all(idx[bar - 1] <= bar - 1) and np.all(idx[bar + 1] >= bar + 1)
    # ... and the whole dense kernel equals the spec written with python loops
    np.testing.assert_allclose(
        dense_kernel(idx, prob, 101), ref_bb_kernel(g.params, bar), atol=1e-6
    )


def test_beach_bar_legal_hand_cases():
    """d = legal(x, clip(x + a)), noisy = legal(x, clip(d + delta)), bar at 50."""
    g = mfax.make_game("beach_bar_1d")
    idx, prob = g.kernel(bar_agg(0, 1.0, 50), jnp.full((101,), 1 / 101))
    idx = np.asarray(idx)
    ia = lambda a: a + 5  # noqa: E731  action value -> index
    # (x, a) -> successors for atoms (-2, -1, 0, 1, 2)
    cases = {
        (45, 3): [46, 47, 48, 49, 49],  # d = 48; 48 + 2 = 50 is the bar -> 49
        (48, 5): [47, 48, 49, 49, 49],  # 53 crosses the bar -> d = 49
        (49, 1): [47, 48, 49, 49, 49],  # onto the bar -> stays at 49
        (49, -1): [46, 47, 48, 49, 49],  # d = 48; 48 + 2 = 50 -> 49 (legal w.r.t. x = 49)
        (52, -5): [51, 51, 51, 52, 53],  # 47 crosses -> d = 51
        (55, -3): [51, 51, 52, 53, 54],  # d = 52; 52 - 2 = 50 -> 51
        (0, -5): [0, 0, 0, 1, 2],  # clipped at 0
        (100, 4): [98, 99, 100, 100, 100],  # clipped at 100
        (50, 2): [50, 51, 52, 53, 54],  # standing on the bar: no restriction
        (50, -5): [43, 44, 45, 46, 47],
    }
    for (x, a), succ in cases.items():
        np.testing.assert_array_equal(idx[x, ia(a)], succ, err_msg=f"x={x}, a={a}")
    np.testing.assert_allclose(np.asarray(prob)[45, 0], [0.05, 0.1, 0.7, 0.1, 0.05], rtol=1e-6)
    # without idiosyncratic noise the row is the deterministic successor
    g0 = mfax.make_game("beach_bar_1d", idio_noise=False)
    idx0, prob0 = g0.kernel(bar_agg(0, 1.0, 50), jnp.full((101,), 1 / 101))
    for (x, a), succ in cases.items():
        assert int(idx0[x, ia(a), 0]) == succ[2]
    np.testing.assert_array_equal(np.asarray(prob0), 1.0)
    # the reference legal() itself, from the spec
    assert (
        ref_legal(10, 60, 50) == 49 and ref_legal(90, 20, 50) == 51 and ref_legal(10, 20, 50) == 20
    )


def test_beach_bar_reset_fixed_and_random_bar():
    g = mfax.make_game("beach_bar_1d", bar_location=30)
    agg, mu0 = g.reset(jax.random.PRNGKey(0))
    mu0 = np.asarray(mu0)
    assert int(agg.bar) == 30 and float(agg.z) == 1.0 and int(agg.t) == 0
    assert mu0[30] == 0.0
    np.testing.assert_allclose(np.delete(mu0, 30), 1.0 / 100, rtol=1e-6)
    np.testing.assert_allclose(mu0.sum(), 1.0, atol=1e-6)

    g = mfax.make_game("beach_bar_1d")  # random bar
    assert g.params.bar_location is None
    aggs, mus = jax.vmap(g.reset)(jax.random.split(jax.random.PRNGKey(1), 4000))
    bars = np.asarray(aggs.bar)
    assert bars.min() == 25 and bars.max() == 75
    counts = np.bincount(bars, minlength=101)[25:76]
    assert counts.min() > 40 and counts.max() < 130  # ~78 each (uniform on 51 values)
    mus = np.asarray(mus)
    assert np.all(mus[np.arange(4000), bars] == 0.0)
    np.testing.assert_allclose(mus.sum(-1), 1.0, atol=1e-5)
    assert np.all(np.asarray(aggs.z) == 1.0)
    # the random range for another size: floor(0.25 S) .. ceil(0.75 S) - 1
    g = mfax.make_game("beach_bar_1d", num_states=10)
    bars = np.asarray(jax.vmap(g.reset)(jax.random.split(jax.random.PRNGKey(2), 500))[0].bar)
    assert set(bars.tolist()) == set(range(2, 8))


def test_beach_bar_rewards_hand_values():
    g = mfax.make_game("beach_bar_1d")
    S, b = 101, 50
    mu = jnp.full((S,), 1.0 / S)
    a = np.arange(-5, 6)
    for z, zn in [(1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]:
        for t in (3, 14, 29):  # 29 = T - 1: the terminal reward has the same form
            r = np.asarray(g.reward(bar_agg(t, z, b), mu, bar_agg(t + 1, zn, b), mu))
            assert r.shape == (S, 11)
            np.testing.assert_allclose(
                r, ref_bb_reward(g.params, b, z, zn, np.asarray(mu)), rtol=1e-6, atol=1e-6
            )
            # hand values: next to the bar when it closes pays -S
            pen = S if zn == 0.0 else 0.0
            np.testing.assert_allclose(r[49], -1 * z - pen - np.abs(a) / S, rtol=1e-6)
            np.testing.assert_allclose(r[51], -1 * z - pen - np.abs(a) / S, rtol=1e-6)
            np.testing.assert_allclose(r[48], -2 * z - np.abs(a) / S, rtol=1e-6)
            np.testing.assert_allclose(r[50], -np.abs(a) / S, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(r[0], -50 * z - np.abs(a) / S, rtol=1e-6)
    # explicit numbers: x = 49, a = -2, bar closing: -1 - 101 - 2/101
    r = np.asarray(g.reward(bar_agg(14, 1.0, b), mu, bar_agg(15, 0.0, b), mu))
    assert r[49, 3] == pytest.approx(-1 - 101 - 2 / 101, rel=1e-6)


def test_beach_bar_crowd_aversion():
    g = mfax.make_game("beach_bar_1d", num_states=11, crowd_aversion=0.5, bar_location=5)
    mu = jnp.asarray(np.random.default_rng(3).dirichlet(np.ones(11)), jnp.float32)
    r = np.asarray(g.reward(bar_agg(2, 1.0, 5), mu, bar_agg(3, 1.0, 5), mu))
    np.testing.assert_allclose(
        r, ref_bb_reward(g.params, 5, 1.0, 1.0, np.asarray(mu, np.float64)), rtol=1e-5, atol=1e-5
    )
    g0 = mfax.make_game("beach_bar_1d", num_states=11, bar_location=5)
    r0 = np.asarray(g0.reward(bar_agg(2, 1.0, 5), mu, bar_agg(3, 1.0, 5), mu))
    np.testing.assert_allclose(
        r - r0, np.broadcast_to(-0.5 * np.log(np.asarray(mu) + 1e-8)[:, None], r.shape), rtol=1e-5
    )


def test_beach_bar_bar_closes_only_at_half_horizon():
    g = mfax.make_game("beach_bar_1d")
    T = g.horizon
    keys = jax.random.split(jax.random.PRNGKey(4), 400)
    step = jax.jit(jax.vmap(g.next_aggregate, (0, None)))
    for t in range(T - 1):
        nxt = step(keys, bar_agg(t, 1.0, 50))
        z = np.asarray(nxt.z)
        assert np.all(np.asarray(nxt.t) == t + 1) and np.all(np.asarray(nxt.bar) == 50)
        if t + 1 == T // 2:
            assert set(np.unique(z).tolist()) == {0.0, 1.0}
            assert 0.4 < z.mean() < 0.6  # 1/2 each
        else:
            assert np.all(z == 1.0), t
        # once closed the bar stays closed (z' = z off the flip time)
        if t + 1 != T // 2:
            assert np.all(np.asarray(step(keys, bar_agg(t, 0.0, 50)).z) == 0.0)
    # without common noise z stays 1 at every step
    g0 = mfax.make_game("beach_bar_1d", common_noise=False)
    for t in range(T - 1):
        assert np.all(
            np.asarray(jax.vmap(g0.next_aggregate, (0, None))(keys[:20], bar_agg(t, 1.0, 50)).z)
            == 1.0
        )
    # and in whole rollouts: z_t = 1 before T // 2, constant after, both outcomes occur
    # (4 envs and a [T, S, A] table, as in test_dynamics: the compiled rollout is shared)
    pol = random_policy(g, jax.random.PRNGKey(11))
    closed = []
    for k in range(8):
        z = np.asarray(mfax.rollout(g, pol, jax.random.PRNGKey(k), 4).common_noise)
        assert np.all(z[: T // 2] == 1.0)
        assert np.all(z[T // 2 :] == z[T // 2][None])
        closed += (z[T // 2] == 0.0).tolist()
    assert 0.2 < np.mean(closed) < 0.8


def test_beach_bar_observation():
    g = mfax.make_game("beach_bar_1d")
    S = 101
    mu = jnp.zeros((S,)).at[10].set(0.25).at[30].set(0.75)  # mean 25
    agg = bar_agg(3, 0.0, 60)
    np.testing.assert_allclose(np.asarray(g.raw_observation(agg, mu)), [25.0, 0.0, 60.0], rtol=1e-6)
    np.testing.assert_allclose(
        np.asarray(g.observation(agg, mu)), [1 - 25 / 101, 0.0, 1 - 60 / 101], rtol=1e-6
    )
    assert g.obs_dim == 3


# --------------------------------------------------------------------------
# linear-quadratic
# --------------------------------------------------------------------------
def test_lq_published_sizes_and_noise_probabilities():
    g = mfax.make_game("linear_quadratic")
    assert (g.num_states, g.num_actions, g.horizon) == (99, 7, 30)
    np.testing.assert_array_equal(g.action_values(), np.arange(-3, 4))
    d = np.arange(-3, 4)
    dens = np.exp(-0.5 * d**2) / np.sqrt(2 * np.pi)
    np.testing.assert_allclose(g.params.noise_probs, dens / dens.sum(), rtol=1e-9)
    _, prob = g.kernel(lq_agg(0, 1.0), jnp.full((99,), 1 / 99))
    np.testing.assert_allclose(np.asarray(prob)[17, 2], dens / dens.sum(), rtol=1e-6)


# (t, z) -> deterministic successor of x = 50, a = +2 (sigma rho = 0.5, |eps| = 10)
LQ_PUSH_CASES = [
    (3, 1.0, 47),
    (3, -1.0, 57),
    (10, 1.0, 52),
    (10, -1.0, 52),
    (20, 1.0, 52),
    (21, 1.0, 57),
    (25, 1.0, 57),
    (25, -1.0, 47),
    (7, 1.0, 47),
    (8, 1.0, 52),
]


@pytest.mark.parametrize("t,z,d", LQ_PUSH_CASES)
def test_lq_common_noise_push(t, z, d):
    g = mfax.make_game("linear_quadratic", idio_noise=False)
    mu = jnp.full((99,), 1 / 99)
    idx, prob = g.kernel(lq_agg(t, z), mu)
    assert int(idx[50, 5, 0]) == d and float(prob[50, 5, 0]) == 1.0
    # with idiosyncratic noise: round(d + sqrt(3)/2 delta) = d + delta here
    gn = mfax.make_game("linear_quadratic")
    idx, prob = gn.kernel(lq_agg(t, z), mu)
    np.testing.assert_array_equal(np.asarray(idx[50, 5]), d + np.arange(-3, 4))
    # without common noise there is no push whatever z is
    g0 = mfax.make_game("linear_quadratic", common_noise=False)
    idx, _ = g0.kernel(lq_agg(t, 0.0), mu)
    np.testing.assert_array_equal(np.asarray(idx[50, 5]), 52 + np.arange(-3, 4))


def test_lq_successors_hand_cases():
    mu = jnp.full((99,), 1 / 99)
    g = mfax.make_game("linear_quadratic")
    # clipped at 0: 1 - 3 - 5 -> 0, then round(0 + 0.866 delta) clipped
    idx, _ = g.kernel(lq_agg(3, 1.0), mu)
    np.testing.assert_array_equal(np.asarray(idx[1, 0]), [0, 0, 0, 0, 1, 2, 3])
    idx, _ = g.kernel(lq_agg(25, 1.0), mu)
    np.testing.assert_array_equal(np.asarray(idx[96, 6]), [95, 96, 97, 98, 98, 98, 98])
    # d = int(...) truncates: sigma rho eps = 2.5 -> 50 + 0 - 2.5 = 47.5 -> 47 (not 48)
    g = mfax.make_game("linear_quadratic", sigma=1.0, rho=0.25, idio_noise=False)
    idx, _ = g.kernel(lq_agg(3, 1.0), mu)
    assert int(idx[50, 3, 0]) == 47
    idx, _ = g.kernel(lq_agg(3, -1.0), mu)
    assert int(idx[50, 3, 0]) == 52  # 52.5 -> 52
    # round half to even: sigma sqrt(1 - rho^2) = 0.5 -> d + 0.5 delta
    g = mfax.make_game("linear_quadratic", sigma=0.5, rho=0.0)
    idx, _ = g.kernel(lq_agg(3, 1.0), mu)
    # d = 50: 48.5 -> 48, 49 -> 49, 49.5 -> 50, 50, 50.5 -> 50, 51, 51.5 -> 52
    np.testing.assert_array_equal(np.asarray(idx[50, 3]), [48, 49, 50, 50, 50, 51, 52])
    # d = 51: 49.5 -> 50, 50, 50.5 -> 50, 51, 51.5 -> 52, 52, 52.5 -> 52
    np.testing.assert_array_equal(np.asarray(idx[51, 3]), [50, 50, 50, 51, 52, 52, 52])


@pytest.mark.parametrize("idio_noise", [True, False])
def test_lq_kernel_matches_spec(idio_noise):
    g = mfax.make_game("linear_quadratic", idio_noise=idio_noise)
    mu = jnp.full((99,), 1 / 99)
    for t in (0, 3, 7, 8, 10, 20, 21, 25, 29):
        for z in (-1.0, 1.0):
            idx, prob = g.kernel(lq_agg(t, z), mu)
            np.testing.assert_allclose(
                dense_kernel(idx, prob, 99),
                ref_lq_kernel(g.params, t, z),
                atol=1e-6,
                err_msg=f"t={t}, z={z}",
            )


def test_lq_rewards_with_known_next_mean():
    g = mfax.make_game("linear_quadratic")
    S = 99
    mu = jnp.full((S,), 1 / S)
    mu_next = jnp.zeros((S,)).at[30].set(0.5).at[50].set(0.5)  # m' = 40
    a = np.arange(-3, 4, dtype=np.float64)
    for t in (0, 5, 28):
        r = np.asarray(g.reward(lq_agg(t, 1.0), mu, lq_agg(t + 1, 1.0), mu_next))
        np.testing.assert_allclose(r, ref_lq_reward(g.params, t, np.asarray(mu_next)), rtol=1e-5)
        # by hand: x = 45 (gap -5): -0.5 a^2 - 0.5 a - 6.25
        np.testing.assert_allclose(r[45], -0.5 * a**2 + 0.1 * a * (-5) - 0.25 * 25, rtol=1e-6)
        # x = 40 (gap 0): -0.5 a^2
        np.testing.assert_allclose(r[40], -0.5 * a**2, rtol=1e-6)
    # terminal step t = T - 1: -(c_term / 2) (m' - x)^2 for every action
    r = np.asarray(g.reward(lq_agg(29, 1.0), mu, lq_agg(30, 1.0), mu_next))
    np.testing.assert_allclose(r, ref_lq_reward(g.params, 29, np.asarray(mu_next)), rtol=1e-5)
    np.testing.assert_allclose(r[45], np.full(7, -12.5), rtol=1e-6)
    np.testing.assert_allclose(r[0], np.full(7, -800.0), rtol=1e-6)
    # the reward uses the *next* mean field, not the current one
    r_cur = np.asarray(g.reward(lq_agg(5, 1.0), mu_next, lq_agg(6, 1.0), mu))
    assert r_cur[40, 3] == pytest.approx(-0.25 * 81.0, rel=1e-5)  # m' = 49 (uniform), a = 0


def test_lq_reset_and_observation():
    g = mfax.make_game("linear_quadratic")
    aggs, mus = jax.vmap(g.reset)(jax.random.split(jax.random.PRNGKey(0), 200))
    z = np.asarray(aggs.z)
    assert set(np.unique(z).tolist()) == {-1.0, 1.0} and 0.3 < (z > 0).mean() < 0.7
    np.testing.assert_allclose(np.asarray(mus), 1 / 99, rtol=1e-6)
    g0 = mfax.make_game("linear_quadratic", common_noise=False)
    assert np.all(
        np.asarray(jax.vmap(g0.reset)(jax.random.split(jax.random.PRNGKey(0), 20))[0].z) == 0.0
    )
    # z is constant for the whole episode
    pol = random_policy(g, jax.random.PRNGKey(11))
    cz = np.concatenate(
        [np.asarray(mfax.rollout(g, pol, jax.random.PRNGKey(k), 4).common_noise) for k in range(3)],
        1,
    )
    assert np.all(cz == cz[:1]) and set(np.unique(cz).tolist()) == {-1.0, 1.0}
    mu = jnp.zeros((99,)).at[20].set(0.5).at[40].set(0.5)
    np.testing.assert_allclose(np.asarray(g.raw_observation(lq_agg(0, 1.0), mu)), [30.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(g.observation(lq_agg(0, 1.0), mu)), [30 / 99], rtol=1e-6)


# --------------------------------------------------------------------------
# macro
# --------------------------------------------------------------------------
def test_macro_published_sizes_and_grids():
    g = mfax.make_game("macro")
    assert (g.num_states, g.num_actions, g.horizon) == (1000, 20, 128)
    np.testing.assert_allclose(g.action_values(), np.arange(0.025, 1.0, 0.05), rtol=1e-6)
    # pivot 0.25 for both default grids (|0| and |0.1| are below 0.25)
    wg = np.maximum(np.geomspace(0.25, 99.25, 200) - 0.25, 0)
    yg = np.maximum(np.geomspace(0.35, 2.25, 5) - 0.25, 0)
    np.testing.assert_allclose(g.wealth_grid, wg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g.income_grid, yg, rtol=1e-5)
    assert g.wealth_grid[0] == 0.0 and g.wealth_grid[-1] == pytest.approx(99.0, rel=1e-6)
    assert g.income_grid[0] == pytest.approx(0.1, rel=1e-6)
    assert g.income_grid[-1] == pytest.approx(2.0, rel=1e-6)
    # a pivot from |lo| when it exceeds 0.25
    g2 = mfax.make_game("macro", wealth_bounds=[2.0, 50.0], num_wealth=7)
    np.testing.assert_allclose(g2.wealth_grid, np.geomspace(4.0, 52.0, 7) - 2.0, rtol=1e-5)
    np.testing.assert_allclose(g2.wealth_grid, ref_grid((2.0, 50.0), 7), rtol=1e-5)
    # flat index = wealth_index * num_income + income_index
    coords = g.state_coords()
    k, y = coords["wealth"][0], coords["income"][0]
    for i, j in [(0, 0), (0, 4), (1, 0), (17, 3), (199, 4)]:
        assert k[i * 5 + j] == g.wealth_grid[i] and y[i * 5 + j] == g.income_grid[j]
    # normalised features follow the log formula
    feats = g.state_features()
    np.testing.assert_allclose(
        feats[7 * 5 + 2, 0], np.log((wg[7] + 0.25) / 0.25) / np.log(99.25 / 0.25), rtol=1e-5
    )
    np.testing.assert_allclose(feats[:, 1].reshape(200, 5)[0], np.linspace(0, 1, 5), atol=1e-5)


def test_macro_prices_from_known_distributions():
    g = mfax.make_game("macro", num_wealth=20)
    kg, yg = g.wealth_grid.astype(np.float64), g.income_grid.astype(np.float64)
    alpha = 0.36
    S = 100
    # point mass at (wealth index 12, income index 3)
    mu = np.zeros(S)
    mu[12 * 5 + 3] = 1.0
    for z in (0.0, 0.2, -0.1):
        K, L = kg[12], yg[3]
        r = np.exp(z) * alpha * (L / (K + 1e-6)) ** (1 - alpha)
        w = np.exp(z) * (1 - alpha) * (K / (L + 1e-6)) ** alpha
        np.testing.assert_allclose(
            np.asarray(g.raw_observation(macro_agg(3, z), jnp.asarray(mu, jnp.float32))),
            [r, w],
            rtol=1e-5,
        )
    # two-point distribution: 0.3 at (5, 0), 0.7 at (18, 4)
    mu = np.zeros(S)
    mu[5 * 5 + 0], mu[18 * 5 + 4] = 0.3, 0.7
    K, L = 0.3 * kg[5] + 0.7 * kg[18], 0.3 * yg[0] + 0.7 * yg[4]
    r = alpha * (L / (K + 1e-6)) ** (1 - alpha)
    w = (1 - alpha) * (K / (L + 1e-6)) ** alpha
    r_, w_ = g.prices(macro_agg(0, 0.0), jnp.asarray(mu, jnp.float32))
    assert float(r_) == pytest.approx(r, rel=1e-5) and float(w_) == pytest.approx(w, rel=1e-5)
    np.testing.assert_allclose(
        np.asarray(g.observation(macro_agg(0, 0.0), jnp.asarray(mu, jnp.float32))),
        [r, w],
        rtol=1e-5,
    )
    # reset: uniform mu_0, z = 0
    agg, mu0 = g.reset(jax.random.PRNGKey(0))
    assert float(agg.z) == 0.0 and int(agg.t) == 0
    np.testing.assert_allclose(np.asarray(mu0), 1 / S, rtol=1e-6)


@pytest.mark.parametrize("idio_noise", [True, False])
def test_macro_kernel_interpolation_and_income(idio_noise):
    g = mfax.make_game("macro", num_wealth=20, idio_noise=idio_noise)
    S, A = 100, 20
    mu = np.random.default_rng(7).dirichlet(np.ones(S)).astype(np.float32).astype(np.float64)
    z = 0.15
    idx, prob = g.kernel(macro_agg(2, z), jnp.asarray(mu, jnp.float32))
    idx, prob = np.asarray(idx), np.asarray(prob, np.float64)
    kg, yg, k, y, r, w, cash = ref_macro_parts(g.params, z, mu)
    acts = (np.arange(A) + 0.5) / A
    target = np.clip(cash[:, None] * (1 - acts[None, :]), kg[0], kg[-1])
    # linear interpolation keeps the mean of next wealth: E[k'] = clip(W (1 - a))
    k_next = kg[idx // 5]
    np.testing.assert_allclose((prob * k_next).sum(-1), target, rtol=1e-4, atol=1e-5)
    # the two wealth points are neighbours that bracket the target
    wi = idx // 5
    lo_k, hi_k = kg[wi.min(-1)], kg[wi.max(-1)]
    assert np.all(lo_k <= target * (1 + 1e-5) + 1e-6) and np.all(hi_k >= target * (1 - 1e-5) - 1e-6)
    assert np.all(wi.max(-1) - wi.min(-1) <= 1)
    # income: index moves by -1, 0, +1 with 0.1, 0.8, 0.1, clipped to 0..4
    yi = idx % 5
    for j in range(5):
        rows = np.arange(S) % 5 == j
        dist = np.zeros(5)
        for jj in range(5):
            dist[jj] = (prob[rows] * (yi[rows] == jj)).sum(-1).mean()
        exp = np.zeros(5)
        if idio_noise:
            for atom, pa in zip((-1, 0, 1), (0.1, 0.8, 0.1)):
                exp[min(max(j + atom, 0), 4)] += pa
        else:
            exp[j] = 1.0
        np.testing.assert_allclose(dist, exp, atol=1e-6, err_msg=f"income index {j}")
    # the dense kernel equals the spec written with loops
    np.testing.assert_allclose(
        dense_kernel(idx, prob, S), ref_macro_kernel(g.params, z, mu), atol=2e-4
    )


def test_macro_kernel_hand_case():
    """One state/action by hand with a point-mass mean field."""
    g = mfax.make_game("macro", num_wealth=20)
    kg, yg = g.wealth_grid.astype(np.float64), g.income_grid.astype(np.float64)
    mu = np.zeros(100)
    mu[10 * 5 + 2] = 1.0
    K, L = kg[10], yg[2]
    r = 0.36 * (L / (K + 1e-6)) ** 0.64
    w = 0.64 * (K / (L + 1e-6)) ** 0.36
    s = 6 * 5 + 4  # wealth index 6, top income
    cash = (1 + r) * kg[6] + w * yg[4]
    a_i = 7  # consume 0.375
    nxt = cash * (1 - 0.375)
    i = np.searchsorted(kg, nxt) - 1
    assert kg[i] <= nxt < kg[i + 1]
    w_hi = (nxt - kg[i]) / (kg[i + 1] - kg[i])
    idx, prob = g.kernel(macro_agg(0, 0.0), jnp.asarray(mu, jnp.float32))
    got = {}
    for q, pq in zip(np.asarray(idx[s, a_i]), np.asarray(prob[s, a_i])):
        got[int(q)] = got.get(int(q), 0.0) + float(pq)
    expected = {
        i * 5 + 3: 0.1 * (1 - w_hi),
        i * 5 + 4: 0.9 * (1 - w_hi),
        (i + 1) * 5 + 3: 0.1 * w_hi,
        (i + 1) * 5 + 4: 0.9 * w_hi,
    }
    assert set(k for k, v in got.items() if v > 1e-7) == set(expected)
    for q, pq in expected.items():
        assert got[q] == pytest.approx(pq, abs=1e-5)
    # clipped to the grid ends: everything above the top lands on the top point
    mu_rich = np.zeros(100)
    mu_rich[19 * 5] = 1.0  # K large -> w large
    idx, prob = g.kernel(macro_agg(0, 0.0), jnp.asarray(mu_rich, jnp.float32))
    W = np.asarray(g.cash_on_hand(macro_agg(0, 0.0), jnp.asarray(mu_rich, jnp.float32)))
    top = np.where(W * (1 - 0.025) >= 99.0)[0]
    assert top.size > 0
    for s in top[:5]:
        assert np.all((np.asarray(idx[s, 0]) // 5 == 19) | (np.asarray(prob[s, 0]) < 1e-6))


def test_macro_rewards_crra():
    g = mfax.make_game("macro", num_wealth=20, horizon=8)
    mu = np.random.default_rng(8).dirichlet(np.ones(100)).astype(np.float32).astype(np.float64)
    mu32 = jnp.asarray(mu, jnp.float32)
    for t in (0, 5, 7):
        r = np.asarray(g.reward(macro_agg(t, 0.1), mu32, macro_agg(t + 1, 0.2), mu32))
        np.testing.assert_allclose(r, ref_macro_reward(g.params, t, 0.1, mu), rtol=1e-4)
    cash = ref_macro_parts(g.params, 0.1, mu)[-1]
    r = np.asarray(g.reward(macro_agg(3, 0.1), mu32, macro_agg(4, 0.0), mu32))
    # sigma = 2: u(c) = -1/c
    np.testing.assert_allclose(r[37, 4], -1.0 / (0.225 * cash[37]), rtol=1e-4)
    # terminal: u(W) for every action
    r = np.asarray(g.reward(macro_agg(7, 0.1), mu32, macro_agg(8, 0.0), mu32))
    np.testing.assert_allclose(r[37], np.full(20, -1.0 / cash[37]), rtol=1e-4)
    # another sigma
    g3 = mfax.make_game("macro", num_wealth=20, horizon=8, crra=3.0)
    r = np.asarray(g3.reward(macro_agg(1, 0.1), mu32, macro_agg(2, 0.0), mu32))
    np.testing.assert_allclose(r[12, 9], (0.475 * cash[12]) ** -2 / -2, rtol=1e-4)


def test_macro_productivity_shock():
    g = mfax.make_game("macro", num_wealth=10)
    keys = jax.random.split(jax.random.PRNGKey(9), 4000)
    nxt = jax.vmap(g.next_aggregate, (0, None))(
        keys, MacroAggregate(t=jnp.asarray(4, jnp.int32), z=jnp.asarray(0.5, jnp.float32))
    )
    z = np.asarray(nxt.z, np.float64)
    assert np.all(np.asarray(nxt.t) == 5)
    # z' = 0.9 * 0.5 + 0.03 N(0, 1)
    assert abs(z.mean() - 0.45) < 4 * 0.03 / np.sqrt(4000)
    assert 0.95 * 0.03 < z.std() < 1.05 * 0.03
    assert abs(((z - 0.45) / 0.03 > 1.0).mean() - 0.1587) < 0.025  # normal tail
    # without common noise z stays 0, at every step
    g0 = mfax.make_game("macro", num_wealth=10, common_noise=False)
    agg = MacroAggregate(t=jnp.asarray(0, jnp.int32), z=jnp.asarray(0.0, jnp.float32))
    step = jax.jit(g0.next_aggregate)
    for k in keys[:10]:
        agg = step(k, agg)
        assert float(agg.z) == 0.0
    assert int(agg.t) == 10
    # with it, a rollout starts at z = 0 and then moves (macro 40x5, T = 16, 4 envs and a
    # [T, S, A] table, as in test_dynamics: the compiled rollout is shared)
    gz = mfax.make_game("macro", num_wealth=40, horizon=16)
    traj = mfax.rollout(gz, random_policy(gz, jax.random.PRNGKey(11)), jax.random.PRNGKey(0), 4)
    cz = np.asarray(traj.common_noise, np.float64)
    assert np.all(cz[0] == 0.0) and np.all(np.abs(cz[1:]) > 0)
    # AR(1): the increments z_{t+1} - rho z_t are N(0, nu^2) draws
    innov = (cz[1:] - 0.9 * cz[:-1]).ravel()
    assert np.abs(innov).max() < 5 * 0.03 and 0.5 * 0.03 < innov.std() < 1.5 * 0.03


# --------------------------------------------------------------------------
# parameter validation
# --------------------------------------------------------------------------
BAD_PARAMS = [
    ("linear_quadratic", {"num_states": 0}, "num_states"),
    ("linear_quadratic", {"num_states": -5}, "num_states"),
    ("beach_bar_1d", {"num_states": 0}, "num_states"),
    ("linear_quadratic", {"horizon": 0}, "horizon"),
    ("beach_bar_1d", {"horizon": -1}, "horizon"),
    ("macro", {"horizon": 0}, "horizon"),
    ("macro", {"num_wealth": 0}, "num_wealth"),
    ("macro", {"num_income": -1}, "num_income"),
    ("macro", {"num_actions": 0}, "num_actions"),
    ("beach_bar_1d", {"noise_probs": [0.1, 0.1, 0.6, 0.1, 0.05]}, "noise_probs"),
    ("linear_quadratic", {"noise_probs": [0.5] * 7}, "noise_probs"),
    ("macro", {"income_probs": [0.2, 0.6, 0.1]}, "income_probs"),
    ("beach_bar_1d", {"noise_probs": [-0.1, 0.2, 0.7, 0.1, 0.1]}, "noise_probs"),
    ("beach_bar_1d", {"bar_location": 101}, "bar_location"),
    ("beach_bar_1d", {"bar_location": -1}, "bar_location"),
    ("beach_bar_1d", {"num_states": 11, "bar_location": 11}, "bar_location"),
    ("linear_quadratic", {"num_states": "abc"}, "num_states"),
    ("linear_quadratic", {"horizon": 2.5}, "horizon"),
    ("beach_bar_1d", {"common_noise": "yes"}, "common_noise"),
    ("linear_quadratic", {"kappa": "big"}, "kappa"),
    ("macro", {"wealth_bounds": [5.0, 1.0]}, "wealth_bounds"),
    ("macro", {"alpha": 1.5}, "alpha"),
]


@pytest.mark.parametrize("name,kw,param", BAD_PARAMS)
def test_bad_parameters_raise_naming_parameter_and_value(name, kw, param):
    with pytest.raises(ValueError) as err:
        mfax.make_game(name, **kw)
    msg = str(err.value)
    assert param in msg, msg
    value = kw[param]
    shown = [repr(value), str(value)]
    if isinstance(value, list):
        shown += [repr(tuple(value)), str(tuple(value))]
    assert any(s in msg for s in shown), msg


def test_unknown_game_and_parameter():
    with pytest.raises(ValueError, match="no_such_game"):
        mfax.make_game("no_such_game")
    with pytest.raises(ValueError) as err:
        mfax.make_game("linear_quadratic", num_state=10)
    assert "num_state" in str(err.value) and "num_states" in str(err.value)
    with pytest.raises(ValueError, match="bar_location"):
        mfax.make_game("linear_quadratic", bar_location=3)


def test_alias_endogenous_and_overrides():
    g = mfax.make_game("endogenous", num_wealth=10, horizon=4)
    assert g.name == "macro" and g == mfax.make_game("macro", num_wealth=10, horizon=4)
    assert g.num_states == 50 and g.horizon == 4
    assert set(mfax.list_games()) == {
        "linear_quadratic",
        "beach_bar_1d",
        "macro",
        "crowd_ring",
        "susceptible_infected",
        "rock_paper_scissors",
    }
    # every published parameter name exists and can be overridden
    for name, kw in {
        "linear_quadratic": dict(
            horizon=5,
            common_noise=False,
            idio_noise=False,
            num_states=9,
            kappa=0.1,
            c_action=0.2,
            q=0.3,
            c_term=0.4,
            sigma=0.5,
            rho=0.6,
        ),
        "beach_bar_1d": dict(
            horizon=5,
            common_noise=False,
            idio_noise=False,
            num_states=9,
            bar_location=4,
            crowd_aversion=0.1,
        ),
        "macro": dict(
            horizon=5,
            common_noise=False,
            idio_noise=False,
            crra=3.0,
            rho=0.5,
            nu=0.1,
            alpha=0.3,
            num_actions=4,
            wealth_bounds=[0.0, 10.0],
            income_bounds=[0.5, 1.0],
            num_wealth=6,
            num_income=2,
        ),
    }.items():
        g = mfax.make_game(name, **kw)
        for k, v in kw.items():
            got = getattr(g.params, k)
            assert (list(got) if isinstance(got, tuple) else got) == v, (name, k)


def test_kernels_match_spec_with_asymmetric_noise():
    """With asymmetric noise probabilities the direction of every atom matters."""
    lq = mfax.make_game(
        "linear_quadratic", num_states=25, noise_probs=[0.3, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]
    )
    for t, z in [(3, 1.0), (25, -1.0)]:
        idx, prob = lq.kernel(lq_agg(t, z), jnp.full((25,), 1 / 25))
        np.testing.assert_allclose(
            dense_kernel(idx, prob, 25), ref_lq_kernel(lq.params, t, z), atol=1e-6
        )
    bb = mfax.make_game("beach_bar_1d", num_states=21, noise_probs=[0.4, 0.3, 0.2, 0.05, 0.05])
    idx, prob = bb.kernel(bar_agg(2, 1.0, 9), jnp.full((21,), 1 / 21))
    np.testing.assert_allclose(dense_kernel(idx, prob, 21), ref_bb_kernel(bb.params, 9), atol=1e-6)
    mc = mfax.make_game(
        "macro", num_wealth=8, num_income=3, num_actions=4, income_probs=[0.5, 0.3, 0.2]
    )
    mu = np.random.default_rng(1).dirichlet(np.ones(24)).astype(np.float32).astype(np.float64)
    idx, prob = mc.kernel(macro_agg(1, 0.05), jnp.asarray(mu, jnp.float32))
    np.testing.assert_allclose(
        dense_kernel(idx, prob, 24), ref_macro_kernel(mc.params, 0.05, mu), atol=2e-4
    )
