"""Exact (push-forward) and sample-based rollouts: mass conservation, agreement
with the kernel, sampled -> exact convergence, determinism, policy forms and
input validation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import GAMES, agg_at, dense_kernel, np_random_policy, small_game

import mfax
import mfax.dynamics as dyn
from mfax.dynamics import rollout_fn
from mfax.networks import NetworkConfig, init_params, network_policy
from mfax.policies import random_policy

# --------------------------------------------------------------------------
# mass conservation
# --------------------------------------------------------------------------
NUM_ENVS, NUM_AGENTS = 4, 1000  # shared by several tests so that compiled rollouts are reused


@pytest.mark.parametrize("num_agents", [None, NUM_AGENTS], ids=["exact", "sampled"])
@pytest.mark.parametrize("name", GAMES)
def test_mass_conserved_and_non_negative(name, num_agents):
    game = small_game(name)
    S, T, E = game.num_states, game.horizon, NUM_ENVS
    pol = random_policy(game, jax.random.PRNGKey(11))
    traj = mfax.rollout(game, pol, jax.random.PRNGKey(12), E, num_agents=num_agents)
    mu = np.concatenate([np.asarray(traj.mu), np.asarray(traj.mu_final)[None]], 0)  # [T+1, E, S]
    assert mu.shape == (T + 1, E, S)
    assert mu.min() >= 0.0
    np.testing.assert_allclose(mu.sum(-1), 1.0, atol=2e-5)
    if num_agents is not None:
        # an empirical distribution of N agents: multiples of 1/N
        counts = mu * num_agents
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-3)
    else:
        # the mean field really moves (the check above is not vacuous)
        assert np.abs(mu[-1] - mu[0]).sum(-1).min() > 1e-2
    assert np.all(np.isfinite(np.asarray(traj.reward)))
    assert np.all(np.isfinite(np.asarray(traj.obs)))
    np.testing.assert_allclose(
        np.asarray(traj.policy),
        np.broadcast_to(np.asarray(pol)[:, None], traj.policy.shape),
        rtol=1e-6,
    )
    if name == "beach_bar_1d":
        # nobody ever stands on the bar
        bar = np.asarray(traj.aggregate.bar)[0]
        assert np.all(mu[:, np.arange(E), bar] == 0.0)
    if num_agents is None:
        _check_push_forward(game, traj, np.asarray(pol, np.float64), mu)


def _check_push_forward(game, traj, pol, mu):
    """mu_{t+1}[s'] = sum_{s,a} mu_t[s] pi_t[s,a] P_t[s,a,s'] along the recorded path,
    with P_t the dense form of the game's kernel rows at (agg_t, mu_t)."""
    kernel = jax.jit(game.kernel)
    observation = jax.jit(game.observation)
    T = game.horizon
    for e in (0, 1):
        for t in sorted({0, 1, T // 2 - 1, T // 2, T - 2, T - 1}):
            agg = agg_at(traj, t, e)
            P = dense_kernel(*kernel(agg, traj.mu[t, e]), game.num_states)
            nxt = np.einsum("s,sa,sat->t", mu[t, e].astype(np.float64), pol[t], P)
            np.testing.assert_allclose(mu[t + 1, e], nxt, atol=2e-6, err_msg=f"t={t}")
            # the recorded observation is the game's observation of (agg_t, mu_t)
            np.testing.assert_allclose(
                np.asarray(traj.obs[t, e]), np.asarray(observation(agg, traj.mu[t, e])), rtol=1e-6
            )


# --------------------------------------------------------------------------
# sample-based -> push-forward as N grows
# --------------------------------------------------------------------------
NS = [100, 1_000, 10_000, 100_000]
#: filled by the convergence tests, printed at the end of the module (pytest -s)
ERROR_TABLE: dict[str, list[tuple[int, float, float]]] = {}


def _convergence(game, label, num_envs=2):
    pol = random_policy(game, jax.random.PRNGKey(21))
    key = jax.random.PRNGKey(22)
    exact = mfax.rollout(game, pol, key, num_envs)
    mu_ex = np.asarray(exact.mu, np.float64)
    x = np.arange(game.num_states, dtype=np.float64)
    l1, mean_err = [], []
    for n in NS:
        samp = mfax.rollout(game, pol, key, num_envs, num_agents=n)
        # the common-noise path (and the beach-bar location) is shared by both modes
        for a, b in zip(
            jax.tree_util.tree_leaves(exact.aggregate), jax.tree_util.tree_leaves(samp.aggregate)
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        d = np.asarray(samp.mu, np.float64) - mu_ex  # [T, E, S]
        l1.append(np.abs(d).sum(-1).mean())  # mean over t and envs of the L1 error
        mean_err.append(np.abs(d @ x).mean())  # mean over t and envs of |mean state diff|
    ERROR_TABLE[label] = list(zip(NS, l1, mean_err))
    print(f"\n{label}: N, mean L1 error, mean |mean-state error|")
    for n, a, b in ERROR_TABLE[label]:
        print(f"  {n:>7d}  {a:.4f}  {b:.4f}")
    ratios = [l1[i] / l1[i + 1] for i in range(len(NS) - 1)]
    # ~ 1/sqrt(N): each x10 in N divides the error by ~3.16
    assert all(2.0 < r < 5.0 for r in ratios), (label, ratios)
    assert l1[-1] < 0.05
    # the mean state converges too (noisier with few envs: one loose overall check)
    assert mean_err[0] / mean_err[-1] > 10.0, (label, mean_err)
    assert mean_err[-1] < 0.005 * game.num_states  # 0.5% of the grid


def test_sampled_converges_to_exact_lq_without_common_noise():
    _convergence(mfax.make_game("linear_quadratic", common_noise=False), "lq, no common noise")


@pytest.mark.slow  # ~25 s; CI runs it (without common noise stays by default)
def test_sampled_converges_to_exact_lq_with_common_noise():
    game = mfax.make_game("linear_quadratic")
    _convergence(game, "lq, common noise")


def test_sampled_macro_follows_each_actions_kernel_row():
    """In macro the kernel probabilities (interpolation weights) depend on the
    action, so each agent must draw its successor from the row of its own
    action; with N = 2e4 and 2e5 agents the sampled mean field is within
    sampling noise (L1 ~ sqrt(2 S / (pi N))) of the exact one at every step."""
    game = mfax.make_game("macro", num_wealth=10, num_actions=5, horizon=3, common_noise=False)
    pol = np_random_policy(game, 0)
    exact = mfax.rollout(game, pol, jax.random.PRNGKey(0), 2)
    mu_ex = np.concatenate([np.asarray(exact.mu), np.asarray(exact.mu_final)[None]])
    errs = []
    for n in (20_000, 200_000):
        samp = mfax.rollout(game, pol, jax.random.PRNGKey(0), 2, num_agents=n)
        mu_s = np.concatenate([np.asarray(samp.mu), np.asarray(samp.mu_final)[None]])
        l1 = np.abs(mu_s - mu_ex).sum(-1)  # [T + 1, E]
        noise = np.sqrt(2 * game.num_states / (np.pi * n))
        assert l1.max() < 2.5 * noise, (n, l1, noise)
        errs.append(l1.mean())
    assert 2.0 < errs[0] / errs[1] < 5.0, errs


@pytest.mark.slow
def test_sampled_converges_to_exact_beach_bar_with_common_noise():
    _convergence(mfax.make_game("beach_bar_1d"), "beach bar, common noise, random bar")


@pytest.mark.slow
def test_sampled_converges_to_exact_macro():
    # prices depend on the sampled mean field: a non-linear dynamics
    _convergence(
        mfax.make_game("macro", num_wealth=40, horizon=12), "macro (40x5, T=12), common noise"
    )


# --------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------
def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _identical(a, b) -> bool:
    la, lb = _leaves(a), _leaves(b)
    return len(la) == len(lb) and all(
        x.shape == y.shape and x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(la, lb)
    )


@pytest.mark.parametrize("num_agents", [None, NUM_AGENTS], ids=["exact", "sampled"])
@pytest.mark.parametrize("name", ["linear_quadratic", "beach_bar_1d"])
def test_same_key_same_rollout_different_key_different(name, num_agents):
    game = small_game(name)  # the games of the mass test: the compiled rollouts are reused
    pol = random_policy(game, jax.random.PRNGKey(0))

    def run(k):
        return mfax.rollout(game, pol, jax.random.PRNGKey(k), NUM_ENVS, num_agents=num_agents)

    a, b, c = run(3), run(3), run(7)
    assert _identical(a, b)
    assert not np.array_equal(np.asarray(a.mu), np.asarray(c.mu))
    # the common noise itself differs between keys (and between envs of one key)
    noise = {
        "linear_quadratic": lambda tr: tr.aggregate.z,
        "beach_bar_1d": lambda tr: tr.aggregate.bar,
    }[name]
    assert not np.array_equal(np.asarray(noise(a)), np.asarray(noise(c)))
    assert len(np.unique(np.asarray(noise(a))[0])) > 1
    if num_agents is None and name == "beach_bar_1d":
        # without common noise (fixed bar) the exact rollout does not depend on the key
        g0 = mfax.make_game(name, common_noise=False, bar_location=40)
        a0 = mfax.rollout(g0, pol, jax.random.PRNGKey(1), NUM_ENVS)
        b0 = mfax.rollout(g0, pol, jax.random.PRNGKey(2), NUM_ENVS)
        np.testing.assert_array_equal(np.asarray(a0.mu), np.asarray(b0.mu))
        np.testing.assert_array_equal(np.asarray(a0.mu[:, 0]), np.asarray(a0.mu[:, 3]))


@pytest.mark.parametrize("name", ["linear_quadratic", "beach_bar_1d", "macro"])
def test_exact_and_sampled_share_the_common_noise(name):
    """The same key gives the same common-noise path (z, bar) in both modes, so
    that sampled and exact trajectories are comparable."""
    game = small_game(name)
    pol = random_policy(game, jax.random.PRNGKey(0))
    for k in range(5):
        a = mfax.rollout(game, pol, jax.random.PRNGKey(k), NUM_ENVS)
        b = mfax.rollout(game, pol, jax.random.PRNGKey(k), NUM_ENVS, num_agents=NUM_AGENTS)
        for x, y in zip(
            jax.tree_util.tree_leaves(a.aggregate), jax.tree_util.tree_leaves(b.aggregate)
        ):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        # and the sampled mean field is close to the exact one (N = 1000: L1 ~ 0.3)
        l1 = np.abs(np.asarray(a.mu) - np.asarray(b.mu)).sum(-1)
        assert l1.max() < 0.8 * (game.num_states / 100) ** 0.5


# --------------------------------------------------------------------------
# policy forms
# --------------------------------------------------------------------------
def test_policy_forms_agree():
    game = small_game(
        "linear_quadratic"
    )  # the game of the mass test: some compiled rollouts are reused
    S, A, T, E = game.num_states, game.num_actions, game.horizon, NUM_ENVS
    key = jax.random.PRNGKey(5)
    uni = np.full((S, A), 1.0 / A, np.float32)
    ref = mfax.rollout(game, np.broadcast_to(uni, (T, S, A)).copy(), key, E)
    forms = {
        "table [S, A]": uni,
        "nested list [S, A]": uni.tolist(),
        "uniform_policy": mfax.uniform_policy(game),
        "callable": lambda obs: jnp.full((S, A), 1.0 / A),
    }
    for label, pol in forms.items():
        traj = mfax.rollout(game, pol, key, E)
        np.testing.assert_allclose(
            np.asarray(traj.mu), np.asarray(ref.mu), atol=1e-7, err_msg=label
        )
        np.testing.assert_allclose(np.asarray(traj.policy), 1.0 / A, rtol=1e-6, err_msg=label)

    # a time-dependent table equals a recurrent policy that counts steps in its carry
    table = np.asarray(random_policy(game, jax.random.PRNGKey(6)))

    class Counter:
        def initial_carry(self):
            return jnp.zeros((), jnp.int32)

        def __call__(self, obs, carry):
            return jnp.asarray(table)[carry], carry + 1

    a = mfax.rollout(game, table, key, E)
    b = mfax.rollout(game, Counter(), key, E)
    np.testing.assert_allclose(np.asarray(b.policy), np.asarray(a.policy), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(b.mu), np.asarray(a.mu), atol=1e-7)
    # the carry is reset at each episode start: a second rollout gives the same
    c = mfax.rollout(game, Counter(), key, E)
    np.testing.assert_array_equal(np.asarray(c.mu), np.asarray(b.mu))
    # ... and a [T, S, A] table is really used per time step
    assert not np.allclose(np.asarray(a.mu), np.asarray(mfax.rollout(game, table[0], key, E).mu))

    # an observation-dependent callable is applied to each env's recorded observations,
    # and equals the [T, S, A] table of its outputs along env 0's path (same key, same z)
    w = jnp.asarray(np.linspace(-1, 1, S * A).reshape(S, A), jnp.float32)

    def by_obs(obs):
        return jax.nn.softmax(w * (1.0 + 10.0 * obs[0]), -1)

    traj = mfax.rollout(game, by_obs, key, E)
    expected = jax.vmap(jax.vmap(by_obs))(traj.obs)
    np.testing.assert_allclose(np.asarray(traj.policy), np.asarray(expected), rtol=1e-5)
    as_table = np.asarray(expected[:, 0], np.float64)
    as_table /= as_table.sum(-1, keepdims=True)
    traj2 = mfax.rollout(game, as_table, key, E)
    np.testing.assert_allclose(np.asarray(traj2.mu[:, 0]), np.asarray(traj.mu[:, 0]), atol=1e-6)
    # envs with another common noise see other observations, hence other policies
    z = np.asarray(traj.common_noise[0])
    other = int(np.argmax(z != z[0]))
    assert z[other] != z[0]
    assert not np.allclose(np.asarray(traj.policy[:, other]), np.asarray(traj.policy[:, 0]))


# --------------------------------------------------------------------------
# input validation
# --------------------------------------------------------------------------
def test_bad_rollout_inputs_raise():
    game = mfax.make_game("linear_quadratic", num_states=11, horizon=5)
    S, A = 11, 7
    uni = np.full((S, A), 1.0 / A)
    for n in (0, -3):
        with pytest.raises(ValueError, match=f"num_envs.*{n}"):
            mfax.rollout(game, uni, jax.random.PRNGKey(0), n)
    with pytest.raises(ValueError, match="num_envs"):
        mfax.rollout(game, uni, jax.random.PRNGKey(0), "2")
    with pytest.raises(ValueError, match="num_agents.*0"):
        mfax.rollout(game, uni, jax.random.PRNGKey(0), 1, num_agents=0)
    with pytest.raises(ValueError, match=r"\(12, 7\)"):
        mfax.rollout(game, np.full((S + 1, A), 1.0 / A), jax.random.PRNGKey(0), 1)
    with pytest.raises(ValueError, match=r"\(4, 11, 7\)"):
        mfax.rollout(game, np.full((4, S, A), 1.0 / A), jax.random.PRNGKey(0), 1)
    neg = uni.copy()
    neg[3, 0], neg[3, 1] = -0.1, neg[3, 1] + 0.1
    with pytest.raises(ValueError, match="-0.1"):
        mfax.rollout(game, neg, jax.random.PRNGKey(0), 1)
    bad = uni.copy()
    bad[2] *= 0.5
    with pytest.raises(ValueError, match="sum to 1"):
        mfax.rollout(game, bad, jax.random.PRNGKey(0), 1)
    nan = uni.copy()
    nan[0, 0] = np.nan
    with pytest.raises(ValueError):
        mfax.rollout(game, nan, jax.random.PRNGKey(0), 1)
    with pytest.raises(ValueError, match="sum to 1"):
        mfax.evaluate_policy(game, bad, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="num_envs.*0"):
        mfax.evaluate_policy(game, uni, jax.random.PRNGKey(0), num_envs=0)


# --------------------------------------------------------------------------
# the kernel rows recomputed in the backward pass (Game.recompute_kernel_rows)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", GAMES)
def test_recomputed_kernel_rows_give_the_same_values_and_gradient(name, monkeypatch):
    game = small_game(name)
    cfg = NetworkConfig(hidden=(16, 16), embed_dim=8)
    policy = network_policy(cfg, game)
    params = init_params(cfg, game, jax.random.key(0))

    def value_and_grad(recompute: bool):
        monkeypatch.setattr(type(game), "recompute_kernel_rows", recompute)
        run = rollout_fn(game, policy, 3)

        def ret(p):  # the agent's expected total reward, differentiable through mu and pi
            traj = run(p, jax.random.key(1))
            return jnp.sum(traj.mu[..., None] * traj.policy * traj.reward), traj.mu_final

        (v, mu_final), g = jax.jit(jax.value_and_grad(ret, has_aux=True))(params)
        return v, mu_final, g

    v0, mu0, g0 = value_and_grad(False)
    v1, mu1, g1 = value_and_grad(True)
    # the forward pass is the same computation either way; the gradient's sums may be
    # ordered differently
    np.testing.assert_array_equal(np.asarray(mu1), np.asarray(mu0))
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-6)
    flat0, flat1 = jax.tree_util.tree_leaves(g0), jax.tree_util.tree_leaves(g1)
    assert any(np.abs(np.asarray(x)).max() > 0 for x in flat0)
    for a, b in zip(flat0, flat1):  # float rounding, relative to the leaf's scale
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5 * np.abs(a).max())


# --------------------------------------------------------------------------
# the push-forward's flat indices: 16 bits where E * S fits, else 32
# --------------------------------------------------------------------------
@pytest.mark.parametrize("E, S", [(3, 500), (2, 2**15 + 1)])  # 1500 and 65538 flat states
def test_push_forward_index_types_agree(E, S, monkeypatch):
    """`push_forward` against `np.add.at`, and with 32-bit indices everywhere
    (`_NARROW_INDICES` = 0): the same sums and gradients, bit for bit."""
    A, K = 3, 2
    keys = jax.random.split(jax.random.key(0), 4)
    mu = jax.random.dirichlet(keys[0], jnp.ones(S), (E,))
    pi = jax.random.dirichlet(keys[1], jnp.ones(A), (E, S))
    idx = jax.random.randint(keys[2], (E, S, A, K), 0, S)
    prob = jax.random.dirichlet(keys[3], jnp.ones(K), (E, S, A))
    weights = np.asarray(mu)[:, :, None, None] * np.asarray(pi)[..., None] * np.asarray(prob)
    want = np.zeros((E, S), np.float32)
    for e in range(E):
        np.add.at(want[e], np.asarray(idx[e]).reshape(-1), weights[e].reshape(-1))

    def run():
        def loss(mu, pi, prob):
            return jnp.sum(jnp.sin(dyn.push_forward(mu, pi, idx, prob)) * jnp.arange(S))

        out = jax.jit(dyn.push_forward)(mu, pi, idx, prob)
        return out, jax.jit(jax.grad(loss, (0, 1, 2)))(mu, pi, prob)

    out, grads = run()
    np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-7)
    monkeypatch.setattr(dyn, "_NARROW_INDICES", 0)
    out32, grads32 = run()
    np.testing.assert_array_equal(np.asarray(out), np.asarray(out32))
    for a, b in zip(grads, grads32):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# --------------------------------------------------------------------------
# a kernel in two stages: a move to an intermediate state, then its row
# --------------------------------------------------------------------------
def test_two_stage_kernel_is_its_composed_rows():
    """`push_forward_two_stage` and `expectation_two_stage` against `push_forward` and
    `expectation` on the composed rows ``noise_idx[moves]``, with more intermediate
    states than states (M = S + 3), values with leading axes, and the gradients."""
    E, S, A, M, K = 2, 7, 3, 10, 4
    keys = jax.random.split(jax.random.key(1), 6)
    mu = jax.random.dirichlet(keys[0], jnp.ones(S), (E,))
    pi = jax.random.dirichlet(keys[1], jnp.ones(A), (E, S))
    moves = jax.random.randint(keys[2], (E, S, A), 0, M)
    noise_idx = jax.random.randint(keys[3], (E, M, K), 0, S)
    noise_prob = jax.random.dirichlet(keys[4], jnp.ones(K))  # one row for all, [K]
    idx = jnp.take_along_axis(noise_idx, moves.reshape(E, S * A, 1), 1).reshape(E, S, A, K)
    prob = jnp.broadcast_to(noise_prob, idx.shape)
    values = jax.random.normal(keys[5], (2, 3, E, S))

    def loss(push, mu, pi):
        return jnp.sum(jnp.sin(push(mu, pi)) * jnp.arange(S))

    def two_stage(m, p):
        return dyn.push_forward_two_stage(m, p, moves, noise_idx, noise_prob)

    def composed(m, p):
        return dyn.push_forward(m, p, idx, prob)

    @jax.jit  # one program (run eagerly, each small operation would compile on its own)
    def both():
        return (
            (two_stage(mu, pi), composed(mu, pi)),
            (
                dyn.expectation_two_stage(values, moves, noise_idx, noise_prob),
                dyn.expectation(values, idx, prob),
            ),
            (jax.grad(loss, (1, 2))(two_stage, mu, pi), jax.grad(loss, (1, 2))(composed, mu, pi)),
        )

    (push_two, push_one), (exp_two, exp_one), (two, one) = both()
    np.testing.assert_allclose(push_two, push_one, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(exp_two, exp_one, rtol=1e-6, atol=1e-6)
    for a, b in zip(two, one):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
