"""The SPG loss: the return summed forward along the agent's own distribution has the value
and the gradient of the policy-value recursion on the frozen mean-field path (the
definition, docs/algorithms.md#spg-and-rspg), on every game, feed-forward and recurrent,
sampled and exact noise; and the population stays a constant for differentiation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfax.dynamics import rollout_fn
from mfax.evaluation import discounted_returns, expected_return, policy_value
from mfax.networks import network_policy
from mfax.noise_tree import enumerate_paths, paths_rollout_fn
from mfax.training import TrainConfig, make_train

SMALL = dict(hidden=(16, 16), embed_dim=8, gru_hidden=8)
GAMES = {
    "linear_quadratic": dict(num_states=11, horizon=6),
    "beach_bar_1d": dict(num_states=9, horizon=6, max_action=2, crowd_aversion=0.5),
    "macro": dict(num_wealth=8, num_income=3, num_actions=4, horizon=5),
}


def _setup(game_name, algo):
    trainer = make_train(
        TrainConfig(game=game_name, algo=algo, game_params=GAMES[game_name], **SMALL)
    )
    params = jax.jit(trainer.init)(jax.random.key(0)).params
    return trainer.game, network_policy(trainer.network, trainer.game), params, trainer.gamma


def _recursion_return(game, traj, gamma):
    """``J`` by the definition: ``sum_s mu_0[s] V_0[s]`` of the policy-value recursion."""
    return jnp.sum(traj.mu0 * policy_value(game, traj, gamma), -1)


def _assert_same(forward, recursion, params):
    (jf, gf), (jr, gr) = (jax.jit(jax.value_and_grad(f))(params) for f in (forward, recursion))
    np.testing.assert_allclose(jf, jr, rtol=2e-6)
    leaves_f, leaves_r = jax.tree_util.tree_leaves(gf), jax.tree_util.tree_leaves(gr)
    scale = max(float(jnp.max(jnp.abs(g))) for g in leaves_r)
    assert scale > 0
    for a, b in zip(leaves_f, leaves_r):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * scale)


@pytest.mark.parametrize(
    "game_name, algo",
    [
        ("linear_quadratic", "spg"),
        pytest.param("beach_bar_1d", "rspg", marks=pytest.mark.slow),  # ~16 s; CI runs it
        ("macro", "spg"),
        pytest.param("macro", "rspg", marks=pytest.mark.slow),  # ~16 s; CI runs it
    ],
)
def test_forward_return_is_the_policy_value_recursion_sampled_noise(game_name, algo):
    game, policy, params, gamma = _setup(game_name, algo)
    run, key = rollout_fn(game, policy, 3), jax.random.key(5)
    _assert_same(
        lambda p: expected_return(run(p, key), gamma),
        lambda p: jnp.mean(_recursion_return(game, run(p, key), gamma)),
        params,
    )


def test_forward_return_is_the_policy_value_recursion_on_every_noise_path():
    game, policy, params, gamma = _setup("beach_bar_1d", "rspg")
    paths = enumerate_paths(game)
    assert paths.weight.shape[0] > 1
    values = {f: jnp.asarray(v) for f, v in paths.values.items()}
    w, run = jnp.asarray(paths.weight), paths_rollout_fn(game, policy, int(paths.weight.shape[0]))
    _assert_same(
        lambda p: jnp.sum(w * discounted_returns(run(p, values), gamma)),
        lambda p: jnp.sum(w * _recursion_return(game, run(p, values), gamma)),
        params,
    )


def test_population_is_a_constant_and_the_agent_distribution_is_not():
    # macro: the prices (from the mean field) drive the kernel, rewards and observations
    game, policy, params, _ = _setup("macro", "rspg")
    run, key = rollout_fn(game, policy, 2), jax.random.key(2)
    traj = run(params, key)
    weights = jax.random.normal(jax.random.key(9), traj.mu.shape)
    scalars = {  # what the population's mean field drives, then the agent's distribution
        "reward": lambda t: jnp.sum(jnp.sin(t.reward)),
        "obs": lambda t: jnp.sum(jnp.sin(t.obs)),
        "raw_obs": lambda t: jnp.sum(jnp.sin(t.raw_obs)),
        "weighted mu": lambda t: jnp.sum(weights * t.mu),
        "mass of mu": lambda t: jnp.sum(t.mu),
    }

    @jax.jit
    def grad_norms(p):
        out = {}
        for name, scalar in scalars.items():
            g = jax.grad(lambda q, f=scalar: f(run(q, key)))(p)
            out[name] = jnp.max(
                jnp.stack([jnp.max(jnp.abs(x)) for x in jax.tree_util.tree_leaves(g)])
            )
        return out

    norms = {k: float(v) for k, v in grad_norms(params).items()}
    for name in ("reward", "obs", "raw_obs"):
        assert norms[name] == 0.0, (name, norms)
    # the recorded mu moves with the policy; its mass (1 per environment and step) does not
    assert norms["weighted mu"] > 1e-3, norms
    assert norms["mass of mu"] < 1e-4 * norms["weighted mu"], norms
    np.testing.assert_allclose(jnp.sum(traj.mu, -1), 1.0, rtol=1e-5)
