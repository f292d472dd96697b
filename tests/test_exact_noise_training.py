"""SPG / RSPG with ``noise: exact``: the batch is every common-noise path weighted by its
probability (`mfax.noise_tree`), so the loss is the exact expected return and the gradient
has no sampling variance (docs/algorithms.md#spg-and-rspg)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import mfax
from mfax.dynamics import rollout_fn
from mfax.evaluation import expected_return
from mfax.training import TrainConfig, make_train, run_training

TINY = dict(hidden=(16,), embed_dim=8, gru_hidden=8)
#: bars 2..6 x open/closed = 10 paths of probability 1/10; crowd aversion makes the
#: rewards read the mean field, so the paths' returns differ
BAR = dict(
    game="beach_bar_1d",
    num_iterations=2,
    eval_every=1,
    gamma=0.9,
    game_params={"num_states": 9, "horizon": 6, "max_action": 2, "crowd_aversion": 0.5},
    ent_coef=0.0,  # the loss is -J (with the entropy bonus: tests/test_entropy_bonus.py)
    **TINY,
)
LQ = dict(
    game="linear_quadratic",
    game_params=dict(num_states=21, horizon=8),
    num_iterations=20,
    eval_every=10,
    hidden=(32, 32),
    embed_dim=16,
    gru_hidden=16,
    lr=1e-2,
)


def _first_loss(trainer, key):
    """The loss of the first iteration at the initial parameters, and the new state."""
    state = trainer.init(key)
    new, loss = jax.jit(trainer.iteration)(state, None)
    return state, new, float(loss)


def test_exact_loss_is_the_probability_weighted_mean_of_path_returns():
    trainer = make_train(TrainConfig(algo="rspg", noise="exact", **BAR))
    assert trainer.num_envs == 10  # one environment per path
    state, _, loss = _first_loss(trainer, jax.random.key(1))
    r = mfax.evaluate_policy(
        trainer.game, trainer.policy(state.params), jax.random.key(7), gamma=0.9, noise="exact"
    )
    np.testing.assert_allclose(np.asarray(r.env_weight), np.full(10, 0.1), rtol=1e-6)
    traj = r.trajectory
    per_path = np.sum(np.asarray(traj.mu0) * np.asarray(r.policy_value[0]), -1)  # [10]
    assert np.ptp(per_path) > 1e-3  # the paths differ, so the weights matter
    assert loss == pytest.approx(-float(np.mean(per_path)), rel=1e-5, abs=1e-5)
    assert loss == pytest.approx(-float(r.policy_return), rel=1e-5, abs=1e-5)


def test_exact_gradient_is_deterministic_sampled_is_not():
    exact = make_train(TrainConfig(algo="rspg", noise="exact", **BAR))
    sampled = make_train(TrainConfig(algo="rspg", num_envs=4, **BAR))
    for trainer, same in ((exact, True), (sampled, False)):
        state = trainer.init(jax.random.key(0))
        step = jax.jit(trainer.iteration)
        a, loss_a = step(state._replace(key=jax.random.key(1)), None)
        b, loss_b = step(state._replace(key=jax.random.key(2)), None)
        leaves = zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params))
        assert all(np.array_equal(x, y) for x, y in leaves) == same
        assert (float(loss_a) == float(loss_b)) == same


def test_default_noise_is_sampled_and_its_loss_unchanged():
    """``noise: sampled`` (the default) keeps the loss of before: the mean over ``num_envs``
    sampled environments, from the iteration's key exactly as before (bitwise)."""
    cfg = TrainConfig(algo="rspg", num_envs=4, **BAR)  # the trainer of the test above
    assert cfg.noise == "sampled" and cfg == cfg.replace(noise="sampled")
    trainer = make_train(cfg)
    state, _, loss = _first_loss(trainer, jax.random.key(3))
    _, k_roll = jax.random.split(state.key)
    traj = rollout_fn(trainer.game, trainer.policy(), 4)(state.params, k_roll)
    assert loss == pytest.approx(-float(expected_return(traj, 0.9)), rel=1e-6)


@pytest.fixture(scope="module")
def lq_exact(tmp_path_factory):
    result = run_training(TrainConfig(algo="spg", noise="exact", **LQ), seed=0, progress=False)
    path = tmp_path_factory.mktemp("agents") / "lq_exact"
    mfax.training.save_result(result, path)
    return result, path


def test_exact_training_lowers_exact_exploitability(lq_exact):
    result, _ = lq_exact
    assert result.trainer.num_envs == 2  # z = +1 or -1 at reset
    first, last = (row["exploitability"] for row in (result.curve[0], result.curve[-1]))
    assert first > 10.0 and last < 0.5 * first
    # the curve's evaluation is exact (hindsight) too: it equals evaluate_policy's
    r = mfax.evaluate_policy(result.trainer.game, result.policy, jax.random.key(5), noise="exact")
    assert float(r.exploitability) == pytest.approx(last, rel=1e-5)


def test_saved_agent_keeps_the_key_loads_and_evaluates(lq_exact):
    result, path = lq_exact
    agent = mfax.load_agent(path)
    assert agent.description["training"]["noise"] == "exact"
    assert agent.description["training"]["num_envs"] == 2
    r = mfax.evaluate_policy(agent.game, agent, jax.random.key(0), noise="exact")
    assert float(r.exploitability) == pytest.approx(result.curve[-1]["exploitability"], rel=1e-5)
    from mfax.training.checkpoint import read_meta

    assert TrainConfig(**read_meta(path)["config"]) == result.trainer.config


def test_key_round_trips_through_the_mapping_layer():
    cfg = TrainConfig.from_mapping(
        {"noise": "exact", "game": {"num_states": 11}}, game="linear_quadratic", algo="spg"
    )
    assert cfg.noise == "exact" and cfg.to_dict()["noise"] == "exact"
    assert TrainConfig(**cfg.to_dict()) == cfg
    assert TrainConfig.from_mapping({}, game="linear_quadratic").to_dict()["noise"] == "sampled"
    assert "noise" in TrainConfig.training_keys()


@pytest.mark.parametrize(
    "bad, match",
    [
        (
            dict(noise="Exact"),
            r"'noise' = 'Exact' is not allowed; expected 'sampled' .* or "
            r"'exact'",
        ),
        (dict(noise=None), r"'noise' = None is not allowed"),
        (
            dict(game="macro", noise="exact"),
            r"'noise' = 'exact' is not allowed for macro: its common noise cannot be enumerated "
            r"\(continuous.*use noise: sampled",
        ),
        (
            dict(game="beach_bar_1d", noise="exact", game_params={"num_states": 5001}),
            r"'noise' = 'exact' is not allowed for beach_bar_1d: it has 5002 common-noise paths "
            r"\(2501 \(bar at t = 0\) x 2 \(z at t = 15\)\), more than 4096",
        ),
    ],
)
def test_bad_noise_is_a_clear_error_at_config_time(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)
    with pytest.raises(ValueError, match=match):  # the file / --set layer too
        TrainConfig.from_mapping(
            {"noise": bad["noise"], "game": bad.get("game_params", {})},
            game=bad.get("game", "linear_quadratic"),
        )


def test_without_common_noise_exact_is_one_path_and_equals_sampled():
    """The crowd ring has no common noise: one path, and every sampled environment is that
    path, so both losses agree."""
    cfg = TrainConfig(
        game="crowd_ring",
        noise="exact",
        num_iterations=1,
        eval_every=1,
        game_params={"num_states": 6, "horizon": 4},
        **TINY,
    )
    exact = make_train(cfg)
    assert exact.num_envs == 1
    _, new, loss = _first_loss(exact, jax.random.key(0))
    _, _, loss_sampled = _first_loss(
        make_train(cfg.replace(noise="sampled", num_envs=3)), jax.random.key(0)
    )
    assert np.isfinite(loss) and int(new.failed_at) == -1
    assert loss == pytest.approx(loss_sampled, rel=1e-6)


def test_unequal_path_probabilities_weight_the_loss():
    """Every built-in tree has equally likely paths; a linear-quadratic whose z is +1 with
    probability 0.8 checks that the loss weights each path's return by its probability."""
    from mfax.games.linear_quadratic import LinearQuadratic
    from mfax.games.noise import CommonNoise, NoiseDraw

    class Skewed(LinearQuadratic):
        noise = CommonNoise((NoiseDraw("z", 0, (1.0, -1.0), (0.8, 0.2)),))

    cfg = TrainConfig(
        algo="spg",
        noise="exact",
        num_iterations=1,
        eval_every=1,
        game_params={"num_states": 11, "horizon": 5},
        ent_coef=0.0,
        **TINY,
    )
    trainer = make_train(cfg, Skewed(cfg.game_parameters()))
    state, _, loss = _first_loss(trainer, jax.random.key(4))
    r = mfax.evaluate_policy(
        trainer.game, trainer.policy(state.params), jax.random.key(0), noise="exact"
    )
    z = np.asarray(r.trajectory.common_noise[0])  # [2] the value of z on each path
    per_path = np.sum(np.asarray(r.trajectory.mu0) * np.asarray(r.policy_value[0]), -1)
    assert sorted(z.tolist()) == [-1.0, 1.0] and abs(per_path[0] - per_path[1]) > 1e-3
    expected = 0.8 * per_path[z == 1.0][0] + 0.2 * per_path[z == -1.0][0]
    assert loss == pytest.approx(-expected, rel=1e-5)
    assert abs(loss + np.mean(per_path)) > 1e-4  # the plain mean would be wrong
