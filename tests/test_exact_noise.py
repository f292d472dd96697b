"""Exact common noise and the adapted best response (docs/algorithms.md#exploitability):
a case computed on paper, an independent numpy brute force over the noise tree, and the
defining properties (adapted <= hindsight, sampled -> exact, errors)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import np_random_policy, ref_bb_kernel, ref_bb_reward

import mfax
from mfax.games import make_params
from mfax.noise_tree import enumerate_paths

KEY = jax.random.PRNGKey(0)
#: most tests share this game (and so their compiled evaluations): bars 2..6 x open/closed
#: = 10 paths; crowd aversion makes rewards read the mean field
BAR = {"num_states": 9, "horizon": 6, "max_action": 2, "crowd_aversion": 0.5}


def bar_game():
    return mfax.make_game("beach_bar_1d", **BAR)


def z_policy(game, seed):
    """A policy that reads the bar state z from the observation: one random table while
    the bar is open, another once it is closed (so the coin changes the mean field)."""
    rng = np.random.default_rng(seed)
    tables = rng.dirichlet(np.ones(game.num_actions), size=(2, game.num_states)).astype(np.float32)
    open_, closed = jnp.asarray(tables[0]), jnp.asarray(tables[1])
    return (lambda obs: jnp.where(obs[1] > 0.5, open_, closed)), tables.astype(np.float64)


def ref_bb_tree(game, tables, gamma):
    """Brute force over every (bar, coin) path of the beach bar, written from docs/games.md:
    per-path (hindsight) and tree (adapted: the coin is known from t = T // 2) backward
    induction.  ``tables[0]`` / ``tables[1]`` is the policy while the bar is open / closed."""
    p = game.params
    T, S = p.horizon, p.num_states
    half = T // 2 if p.common_noise and T // 2 > 0 else T + 1
    lo, hi = p.bar_range()
    bars = range(lo, hi + 1) if p.bar_location is None else [p.bar_location]
    coins = [(1.0, 0.5), (0.0, 0.5)] if half <= T else [(1.0, 1.0)]
    out = {"hindsight": 0.0, "adapted": 0.0, "ret": 0.0}
    for b in bars:
        pb = 1.0 / len(bars)
        P = ref_bb_kernel(p, b)
        mu0 = np.where(np.arange(S) == b, 0.0, 1.0 / (S - 1))
        R, pi = {}, {}
        for c, _ in coins:
            z = [1.0 if t < half else c for t in range(T + 1)]
            mu = mu0
            for t in range(T):
                pi[c, t] = tables[0] if z[t] == 1.0 else tables[1]
                R[c, t] = ref_bb_reward(p, b, z[t], z[t + 1], mu)
                mu = np.einsum("s,sa,sat->t", mu, pi[c, t], P)
        V = {c: np.zeros(S) for c, _ in coins}
        H = {c: np.zeros(S) for c, _ in coins}  # hindsight V*
        A = {c: np.zeros(S) for c, _ in coins}  # adapted V*
        for t in reversed(range(T)):
            Q = {c: R[c, t] + gamma * P @ V[c] for c, _ in coins}
            QA = {c: R[c, t] + gamma * P @ A[c] for c, _ in coins}
            H = {c: (R[c, t] + gamma * P @ H[c]).max(-1) for c, _ in coins}
            if t < half:  # the coin is not known yet: average before the max
                Q = {c: sum(q * Q[k] for k, q in coins) for c, _ in coins}
                QA = {c: sum(q * QA[k] for k, q in coins) for c, _ in coins}
            V = {c: np.sum(pi[c, t] * Q[c], -1) for c, _ in coins}
            A = {c: QA[c].max(-1) for c, _ in coins}
        for c, pc in coins:
            out["ret"] += pb * pc * mu0 @ V[c]
            out["hindsight"] += pb * pc * mu0 @ (H[c] - V[c])
            out["adapted"] += pb * pc * mu0 @ (A[c] - V[c])
    return out


def test_paper_case():
    """S = 5, bar at 2, T = 2, moves -1..1, no idiosyncratic noise, gamma = 1, everybody
    stays.  The coin (closed with probability 1/2) is drawn by step 0, whose reward it sets.
    From x = 1 (next to the bar) the agent pays -1 - 5 [closed] at step 0 whatever it does;
    hindsight moves to 0 only if the bar closes (V* = (-2 - 6.2) / 2 = -4.1), adapted
    compares staying (-3.5 - 3 = -6.5) with moving (-3.7 - 1 = -4.7); staying is worth -6.5.
    From x = 0: staying is worth -3, hindsight moves to 1 only if the bar stays open
    (V* = (-3.2 - 2) / 2 = -2.6), adapted stays (-3).  mu_0 = 1/4 on 0, 1, 3, 4."""
    game = mfax.make_game(
        "beach_bar_1d", num_states=5, bar_location=2, horizon=2, max_action=1, idio_noise=False
    )
    stay = np.zeros((5, 3), np.float32)
    stay[:, 1] = 1.0
    hind = mfax.evaluate_policy(game, stay, KEY, gamma=1.0, noise="exact")
    adap = mfax.evaluate_policy(game, stay, KEY, gamma=1.0, noise="exact", best_response="adapted")
    assert float(hind.policy_return) == pytest.approx(-4.75, abs=1e-5)
    assert float(adap.policy_return) == pytest.approx(-4.75, abs=1e-5)
    assert float(hind.best_response_return) == pytest.approx(-3.35, abs=1e-5)
    assert float(adap.best_response_return) == pytest.approx(-3.85, abs=1e-5)
    assert float(hind.exploitability) == pytest.approx(1.4, abs=1e-5)
    assert float(adap.exploitability) == pytest.approx(0.9, abs=1e-5)
    np.testing.assert_allclose(
        np.asarray(adap.per_state_exploitability[0]), [0.0, 1.8, 0.0, 1.8, 0.0], atol=1e-5
    )
    # adapted at t = 0: from 1 move to 0 (action -1); hindsight on the open path stays
    assert int(adap.best_response_actions[0, 0, 1]) == 0
    assert (hind.noise, hind.best_response, adap.best_response) == ("exact", "hindsight", "adapted")
    np.testing.assert_allclose(np.asarray(adap.env_weight), [0.5, 0.5])


def test_matches_numpy_brute_force_over_the_tree():
    """Random bar x closure coin, crowd aversion (rewards read the mean field) and a
    policy that reads z: exact hindsight and adapted exploitability and the return equal
    an independent loop over the 10 paths."""
    game = bar_game()
    pol, tables = z_policy(game, 1)
    ref = ref_bb_tree(game, tables, 0.9)
    hind = mfax.evaluate_policy(game, pol, KEY, gamma=0.9, noise="exact")
    adap = mfax.evaluate_policy(game, pol, KEY, gamma=0.9, noise="exact", best_response="adapted")
    assert hind.env_weight.shape == (10,)  # bars 2..6 x open/closed
    for res, kind in ((hind, "hindsight"), (adap, "adapted")):
        assert float(res.exploitability) == pytest.approx(ref[kind], rel=1e-4), kind
        assert float(res.policy_return) == pytest.approx(ref["ret"], rel=1e-4), kind
    assert ref["adapted"] < ref["hindsight"] - 1e-2  # the case tells them apart


def test_adapted_at_most_hindsight_on_random_policies():
    game = bar_game()
    T, S = game.horizon, game.num_states
    gaps = []
    for seed in range(3):
        pol = np_random_policy(game, seed)
        hind = mfax.evaluate_policy(game, pol, KEY, noise="exact")
        adap = mfax.evaluate_policy(game, pol, KEY, noise="exact", best_response="adapted")
        h, a = float(hind.exploitability), float(adap.exploitability)
        assert 0.0 <= a <= h + 1e-5 * abs(h)
        assert np.asarray(adap.per_state_exploitability).min() >= 0.0
        assert float(adap.policy_return) == pytest.approx(float(hind.policy_return), rel=1e-5)

        # state by state and time by time, V <= adapted V* <= the mean of the hindsight V*
        # over the paths below (paths are bar-major, then open / closed)
        def below(x):
            return np.asarray(x).reshape(T, -1, 2, S).mean(2)

        tol = 1e-5 * np.abs(np.asarray(hind.best_response_value)).max()
        assert (below(adap.best_response_value) <= below(hind.best_response_value) + tol).all()
        assert (below(adap.best_response_value) >= below(adap.policy_value) - tol).all()
        gaps.append(h - a)
    assert min(gaps) > 1e-2


def test_adapted_equals_hindsight_without_later_draws():
    """Linear-quadratic (z drawn at reset) and a game without common noise: the best
    response knows everything from t = 0, so adapted = hindsight."""
    for common_noise, paths in ((True, 2), (False, 1)):
        game = mfax.make_game(
            "linear_quadratic", num_states=11, horizon=6, common_noise=common_noise
        )
        pol = np_random_policy(game, 3)
        hind = mfax.evaluate_policy(game, pol, KEY, noise="exact")
        adap = mfax.evaluate_policy(game, pol, KEY, noise="exact", best_response="adapted")
        assert hind.env_weight.shape == (paths,)
        assert float(hind.exploitability) > 1e-3
        for f in ("exploitability", "best_response_return", "exploitability_undiscounted"):
            assert float(getattr(adap, f)) == pytest.approx(float(getattr(hind, f)), rel=1e-5), f
        np.testing.assert_array_equal(
            np.asarray(adap.best_response_actions), np.asarray(hind.best_response_actions)
        )
    # one path without common noise: exact = any sampled environment
    sampled = mfax.evaluate_policy(game, pol, KEY, 1)
    assert float(hind.exploitability) == pytest.approx(float(sampled.exploitability), rel=1e-6)
    # with noise: sampled + adapted draws the same z per environment as the default
    game = mfax.make_game("linear_quadratic", num_states=11, horizon=6)
    a = mfax.evaluate_policy(game, pol, KEY, 6, best_response="adapted")
    b = mfax.evaluate_policy(game, pol, KEY, 6)
    np.testing.assert_array_equal(
        np.asarray(a.trajectory.common_noise), np.asarray(b.trajectory.common_noise)
    )
    assert len(np.unique(np.asarray(b.trajectory.common_noise[0]))) == 2
    assert float(a.exploitability) == pytest.approx(float(b.exploitability), rel=1e-5)


def test_sampled_mean_converges_to_exact():
    """512 sampled environments: their mean is within 4 standard errors of the exact
    value, and 8 times closer to it on average than means over groups of 8."""
    game = bar_game()
    pol = np_random_policy(game, 0)
    E = 512
    for br in ("hindsight", "adapted"):
        exact = float(
            mfax.evaluate_policy(game, pol, KEY, noise="exact", best_response=br).exploitability
        )
        r = mfax.evaluate_policy(game, pol, jax.random.PRNGKey(1), E, best_response=br)
        per_env = np.asarray(r.per_env_exploitability, np.float64)
        if br == "adapted":  # the coin's two paths below each sampled bar
            assert r.env_weight.shape == (2 * E,)
            per_env = (per_env * np.asarray(r.env_weight) * E).reshape(E, 2).sum(-1)
        assert per_env.mean() == pytest.approx(float(r.exploitability), rel=1e-5)
        se = per_env.std(ddof=1) / np.sqrt(E)
        err = abs(float(r.exploitability) - exact)
        assert err < 4 * se, br
        err8 = np.abs(per_env.reshape(-1, 8).mean(-1) - exact).mean()
        assert err < err8 / 2, (br, err, err8)


def test_continuous_noise_is_refused():
    game = mfax.make_game("macro", num_wealth=6, num_income=3, num_actions=4, horizon=4)
    pol = mfax.uniform_policy(game)
    with pytest.raises(
        ValueError,
        match=r"noise='exact' is not possible for macro: .*"
        r"cannot be enumerated \(continuous.*noise='sampled'",
    ):
        mfax.evaluate_policy(game, pol, KEY, noise="exact")
    # adapted on continuous noise is a bracket (tests/test_noise_bracket.py), which needs
    # two paths or more for its standard errors
    with pytest.raises(
        ValueError,
        match=r"num_envs = 1 is not allowed for the "
        r"exploitability bracket",
    ):
        mfax.evaluate_policy(game, pol, KEY, 1, best_response="adapted")


def test_reproducible_and_exact_ignores_key_and_num_envs():
    game = bar_game()
    pol = np_random_policy(game, 6)
    runs = [
        mfax.evaluate_policy(
            game, pol, jax.random.PRNGKey(k), E, noise="exact", best_response="adapted"
        )
        for k, E in ((0, 1), (0, 1), (5, 7))
    ]
    for other in runs[1:]:
        for x, y in zip(jax.tree_util.tree_leaves(runs[0]), jax.tree_util.tree_leaves(other)):
            assert np.array_equal(np.asarray(x), np.asarray(y))
    a, b = (
        mfax.evaluate_policy(game, pol, jax.random.PRNGKey(3), 512, best_response="adapted")
        for _ in range(2)
    )
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    # the default keeps its meaning: the legacy jitted evaluation (compiled with the
    # evaluations' XLA options), bit for bit
    from mfax.evaluation import evaluate_fn
    from mfax.policies import as_policy
    from mfax.xla import OLD_EMITTERS

    default = mfax.evaluate_policy(game, pol, jax.random.PRNGKey(3), 4)
    p = as_policy(pol, game)
    legacy = jax.jit(evaluate_fn(game, p, 4, 0.99), compiler_options=OLD_EMITTERS)(
        p.params, jax.random.PRNGKey(3)
    )
    assert (default.noise, default.best_response) == ("sampled", "hindsight")
    for x, y in zip(
        jax.tree_util.tree_leaves(default[:12]), jax.tree_util.tree_leaves(legacy[:12])
    ):
        assert np.array_equal(np.asarray(x), np.asarray(y))


def test_noise_declaration_drives_sampling_and_enumeration():
    game = bar_game()
    paths = enumerate_paths(game)
    assert paths.weight.shape == (10,) and paths.weight.sum() == pytest.approx(1.0)
    assert sorted(set(paths.values["bar"].tolist())) == [2, 3, 4, 5, 6]
    # nodes: the bar is known from t = 0, the coin from t = T // 2 = 3
    assert [len(set(n)) for n in paths.node.tolist()] == [5, 5, 5, 10, 10, 10]
    # the sampler draws from the declared atoms with the declared probabilities
    keys = jax.random.split(KEY, 4000)
    aggs, _ = jax.jit(jax.vmap(game.reset))(keys)
    counts = np.bincount(np.asarray(aggs.bar), minlength=9)[2:7]
    assert counts.sum() == 4000 and np.abs(counts / 4000 - 0.2).max() < 0.03
    step = jax.jit(jax.vmap(game.next_aggregate))
    for t, changes in ((1, False), (2, True), (3, False)):  # z set by the step to t = 3 only
        nxt = step(keys, aggs._replace(t=jnp.full(4000, t, jnp.int32)))
        closed = float(jnp.mean(nxt.z == 0.0))
        assert (abs(closed - 0.5) < 0.03) if changes else closed == 0.0
    assert len(enumerate_paths(mfax.make_game("linear_quadratic")).weight) == 2
    assert len(enumerate_paths(mfax.make_game("beach_bar_1d")).weight) == 102


@pytest.mark.parametrize(
    "name, overrides, paths, described",
    [
        ("beach_bar_1d", BAR, 10, "5 (bar at t = 0) x 2 (z at t = 3)"),
        ("beach_bar_1d", {}, 102, "51 (bar at t = 0) x 2 (z at t = 15)"),
        ("beach_bar_1d", {"bar_location": 40, "common_noise": False}, 1, "no common noise"),
        ("linear_quadratic", {}, 2, "2 (z at t = 0)"),
        ("macro", {"common_noise": False}, 1, "no common noise"),
        ("macro", {}, None, None),
    ],
)
def test_parameters_declare_the_noise_the_game_uses(name, overrides, paths, described):
    """The declaration lives in the game's parameters (no JAX: configs are checked with
    it) and is the very noise the built game samples and the tree enumerates."""
    params = make_params(name, **overrides)
    noise = params.noise()
    assert noise == mfax.make_game(name, **overrides).noise
    if paths is None:
        assert not noise.finite and "continuous" in noise.continuous
        return
    assert noise.num_paths == paths and noise.describe() == described
    assert len(enumerate_paths(mfax.make_game(name, **overrides)).weight) == paths


def test_bad_arguments_are_named():
    game = bar_game()
    pol = mfax.uniform_policy(game)
    with pytest.raises(
        ValueError,
        match=r"noise = 'foo' is not allowed; expected 'sampled'"
        r".* or 'exact'",
    ):
        mfax.evaluate_policy(game, pol, KEY, noise="foo")
    with pytest.raises(
        ValueError,
        match=r"best_response = 'oracle' is not allowed; expected "
        r"'hindsight'.* or 'adapted'",
    ):
        mfax.evaluate_policy(game, pol, KEY, best_response="oracle")
    with pytest.raises(ValueError, match=r"max_paths = 0 is not allowed"):
        mfax.evaluate_policy(game, pol, KEY, noise="exact", max_paths=0)
    with pytest.raises(
        ValueError,
        match=r"beach_bar_1d has 10 common-noise paths .*max_paths "
        r"= 4; raise max_paths .* noise='sampled'",
    ):
        mfax.evaluate_policy(game, pol, KEY, noise="exact", max_paths=4)
