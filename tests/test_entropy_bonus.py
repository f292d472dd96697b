"""The SPG / RSPG entropy bonus (``ent_coef``, docs/algorithms.md#spg-and-rspg): the loss of
an iteration is ``-(J + beta_k sum_t gamma^t <m_t, H(pi_t)>)`` with ``beta_k = ent_coef
(1 - k / num_iterations) s``, ``s`` the mean absolute reward per step of the first batch,
fixed for the run; without it the loss is ``-J`` and nothing else changes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfax.dynamics import rollout_fn
from mfax.evaluation import expected_return
from mfax.networks import network_policy
from mfax.noise_tree import enumerate_paths, paths_rollout_fn
from mfax.training import TrainConfig, make_train

SMALL = dict(hidden=(16, 16), embed_dim=8, gru_hidden=8)
LQ = dict(num_states=11, horizon=6)


def _by_definition(traj, gamma, weight):
    """``(J, sum_t gamma^t <mu_t, H(pi_t)>, mean |R| per step)`` in float64 numpy, each the
    ``weight``-mean over environments."""
    mu, pi, r = (np.asarray(x, np.float64) for x in (traj.mu, traj.policy, traj.reward))
    w, disc = np.asarray(weight, np.float64), gamma ** np.arange(mu.shape[0])
    ret = np.einsum("t,tes,tesa,tesa->e", disc, mu, pi, r)
    ent = np.einsum("t,tes,tesa->e", disc, mu, -pi * np.log(pi))
    scale = np.einsum("tes,tesa->e", mu, pi * np.abs(r)) / mu.shape[0]
    return w @ ret, w @ ent, w @ scale


def _trainer(algo, noise="sampled", ent_coef=0.5, num_iterations=4):
    config = TrainConfig(
        game="linear_quadratic",
        algo=algo,
        game_params=LQ,
        num_envs=3,
        num_iterations=num_iterations,
        eval_every=num_iterations,
        noise=noise,
        ent_coef=ent_coef,
        **SMALL,
    )
    return make_train(config)


def _rollout(trainer, noise):
    """``(run(params, key) -> traj, weight[E])``: the trainer's batch, by the public pieces."""
    policy = network_policy(trainer.network, trainer.game)
    if noise == "exact":
        paths = enumerate_paths(trainer.game)
        run = paths_rollout_fn(trainer.game, policy, int(paths.weight.shape[0]))
        values = {f: jnp.asarray(v) for f, v in paths.values.items()}
        return (lambda p, k: run(p, values)), np.asarray(paths.weight)
    return rollout_fn(trainer.game, policy, trainer.num_envs), np.full(3, 1 / 3)


@pytest.mark.parametrize(
    "algo, noise",
    [
        ("spg", "sampled"),
        pytest.param("rspg", "sampled", marks=pytest.mark.slow),  # ~30 s; CI runs it
        ("rspg", "exact"),
    ],
)
def test_loss_is_the_entropy_regularised_return_with_the_first_batch_scale(algo, noise):
    ent_coef, n = 0.5, 4
    trainer = _trainer(algo, noise, ent_coef, n)
    run, weight = _rollout(trainer, noise)
    step = jax.jit(trainer.iteration)
    state = jax.jit(trainer.init)(jax.random.key(3))
    assert float(state.ent_scale) == 0.0
    first_scale = None
    for k in range(2):
        _, k_roll = jax.random.split(state.key)  # the iteration's batch key
        j, ent, scale = _by_definition(jax.jit(run)(state.params, k_roll), trainer.gamma, weight)
        if first_scale is None:
            first_scale = scale
        beta = ent_coef * (1 - k / n) * first_scale
        new, loss = step(state, None)
        np.testing.assert_allclose(float(loss), -(j + beta * ent), rtol=2e-5)
        # the scale is the first batch's, kept by the state (the second batch's differs)
        np.testing.assert_allclose(float(new.ent_scale), first_scale, rtol=1e-5)
        assert ent > 0 and first_scale > 0
        state = new
    assert abs(scale - first_scale) > 1e-3 * first_scale or noise == "exact"


@pytest.mark.slow  # ~25 s; CI runs it
def test_without_the_bonus_the_loss_is_minus_j_and_with_it_the_step_differs():
    trainer = _trainer("rspg", ent_coef=0.0)
    with_bonus = _trainer("rspg", ent_coef=0.5)
    run, _ = _rollout(trainer, "sampled")
    state = jax.jit(trainer.init)(jax.random.key(1))
    _, k_roll = jax.random.split(state.key)
    new, loss = jax.jit(trainer.iteration)(state, None)
    np.testing.assert_array_equal(
        float(loss),
        float(
            -jax.jit(expected_return, static_argnums=1)(run(state.params, k_roll), trainer.gamma)
        ),
    )
    assert float(new.ent_scale) == 0.0
    # the bonus moves the parameters (a weight of 0.5 in reward units is not a no-op)
    moved, _ = jax.jit(with_bonus.iteration)(state, None)
    diffs = jax.tree_util.tree_map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), new.params, moved.params
    )
    assert max(jax.tree_util.tree_leaves(diffs)) > 0


def test_ent_coef_is_validated():
    with pytest.raises(
        ValueError, match=r"'ent_coef' = -0.1 is not allowed; expected a number >= 0"
    ):
        TrainConfig(ent_coef=-0.1)
    with pytest.raises(ValueError, match="'ent_coef'"):
        TrainConfig(ent_coef="0.1")
    assert TrainConfig.from_mapping({"ent_coef": 1e-2}).ent_coef == pytest.approx(0.01)
