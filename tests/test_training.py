"""SPG / RSPG training: improvement, determinism, NaN handling, config validation."""

from __future__ import annotations

import io

import jax
import numpy as np
import pytest

import mfax
from mfax.training import TrainConfig, TrainingDiverged, make_train, run_training
from mfax.training.config import merge_mappings

SMALL = dict(
    game="linear_quadratic",
    game_params=dict(num_states=21, horizon=8),
    num_iterations=40,
    eval_every=20,
    num_envs=8,
    hidden=(32, 32),
    embed_dim=16,
    gru_hidden=16,
    lr=1e-2,
)


@pytest.fixture(scope="module")
def spg_run():
    return run_training(TrainConfig(algo="spg", **SMALL), seed=0, progress=False)


def test_spg_lowers_exploitability(spg_run):
    curve = spg_run.curve
    assert [row["iteration"] for row in curve] == [0, 20, 40]
    first, last = curve[0]["exploitability"], curve[-1]["exploitability"]
    assert first > 10.0  # the random initial network is far from equilibrium
    assert last < 0.5 * first
    assert curve[-1]["policy_return"] > curve[0]["policy_return"]
    assert all(row["exploitability"] >= -1e-4 for row in curve)
    # the wall-clock column is cumulative training time
    secs = [row["seconds"] for row in curve]
    assert secs[0] == 0.0 and secs[1] > 0 and secs[2] >= secs[1]
    assert spg_run.compile_seconds > 0 and spg_run.diverged_at is None
    assert spg_run.losses.shape == (40,) and np.all(np.isfinite(spg_run.losses))
    # the final policy evaluated independently is as good as the curve says
    r = mfax.evaluate_policy(spg_run.trainer.game, spg_run.policy, jax.random.key(9), 8)
    assert float(r.exploitability) < 0.5 * first


def test_same_seed_is_bitwise_identical(spg_run):
    again = run_training(TrainConfig(algo="spg", **SMALL), seed=0, progress=False)
    for a, b in zip(spg_run.curve, again.curve):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }
    np.testing.assert_array_equal(spg_run.losses, again.losses)
    for x, y in zip(
        jax.tree_util.tree_leaves(spg_run.params), jax.tree_util.tree_leaves(again.params)
    ):
        np.testing.assert_array_equal(x, y)


def test_nan_stops_training_keeping_last_good_agent(spg_run):
    cfg = TrainConfig(algo="spg", **SMALL)
    result = run_training(cfg, seed=0, progress=False, inject_nan_at=25)
    assert result.diverged_at == 25
    assert "iteration 25" in result.message
    assert result.curve[-1]["iteration"] == 25  # evaluated after the 25 good updates
    assert len(result.losses) == 26
    np.testing.assert_allclose(result.losses[:25], spg_run.losses[:25], rtol=1e-5)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(result.params))
    assert np.isfinite(result.curve[-1]["exploitability"])
    with pytest.raises(TrainingDiverged, match="iteration 25") as info:
        run_training(cfg, seed=0, progress=False, inject_nan_at=25, raise_on_nan=True)
    assert info.value.result.diverged_at == 25


def test_divergence_guard_reads_every_float_leaf_and_keeps_the_old_state():
    from mfax.training.driver import all_finite, keep_if

    jnp = jax.numpy
    tree = {"w": jnp.ones((3, 2)), "b": jnp.zeros(2), "step": jnp.asarray(7, jnp.int32)}
    assert bool(all_finite(tree))
    for leaf, bad in (("w", jnp.nan), ("b", jnp.inf), ("b", -jnp.inf)):
        broken = {**tree, leaf: tree[leaf].at[0].set(bad)}
        assert not bool(all_finite(broken)), (leaf, bad)
    new = jax.tree_util.tree_map(lambda x: x + 1, tree)
    for ok, want in ((True, new), (False, tree)):
        kept = keep_if(jnp.asarray(ok), new, tree)
        for k in tree:
            np.testing.assert_array_equal(kept[k], want[k])
            assert kept[k].dtype == tree[k].dtype


def test_whole_run_is_one_computation_vmapped_over_seeds(spg_run):
    trainer = make_train(TrainConfig(algo="spg", **SMALL))
    assert trainer is spg_run.trainer  # cached: the same compiled pieces
    assert not trainer.network.recurrent and trainer.num_envs == 8 and trainer.gamma == 0.99
    keys = jax.numpy.stack([jax.random.key(0), jax.random.key(1)])
    state, metrics, losses = jax.jit(jax.vmap(trainer))(keys)
    assert metrics.exploitability.shape == (2, 3) and losses.shape == (2, 40)
    np.testing.assert_array_equal(metrics.iteration[0], [0, 20, 40])
    assert np.all(np.asarray(state.failed_at) == -1)
    # seed 0 of the single scan matches the chunk-by-chunk driver
    np.testing.assert_allclose(
        metrics.exploitability[0], [row["exploitability"] for row in spg_run.curve], rtol=1e-3
    )
    np.testing.assert_allclose(losses[0], spg_run.losses, rtol=1e-3)
    # training helps every seed, and the seeds differ
    assert np.all(metrics.exploitability[:, -1] < 0.5 * metrics.exploitability[:, 0])
    assert float(metrics.exploitability[0, 0]) != float(metrics.exploitability[1, 0])


def test_progress_bar_only_when_asked():
    from mfax.training.progress import ProgressBar

    buf = io.StringIO()
    bar = ProgressBar(100, stream=buf)  # StringIO is not a TTY: nothing drawn
    bar.update(10, 1.5, 0.2)
    bar.close()
    assert buf.getvalue() == ""
    bar = ProgressBar(100, stream=buf, enabled=True)
    bar.update(50, 1.5, 0.2)
    bar.close()
    assert "iter 50/100" in buf.getvalue() and "exploitability 1.5" in buf.getvalue()


def test_published_defaults():
    assert TrainConfig(game="linear_quadratic").resolved_num_envs() == 128
    cfg = TrainConfig(game="macro")
    game = cfg.make_game()
    assert cfg.resolved_num_envs() == 8 and cfg.resolved_gamma(game) == 0.95
    assert cfg.network(game).head == "beta"
    assert (
        TrainConfig(game="beach_bar_1d").network(mfax.make_game("beach_bar_1d")).head
        == "categorical"
    )
    assert TrainConfig().lr == 1e-3 and TrainConfig().hidden == (128, 128)
    assert TrainConfig(game="endogenous").game == "macro"


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(algo="ppo"), r"'algo' = 'ppo' is not allowed; expected spg or rspg"),
        (dict(lr=0.0), r"'lr' = 0.0 is not allowed"),
        (dict(lr=float("nan")), r"'lr' = nan is not allowed"),
        (dict(num_iterations=30, eval_every=20), r"'num_iterations' = 30.*multiple of eval_every"),
        (dict(num_envs=0), r"'num_envs' = 0"),
        (dict(gamma=1.5), r"'gamma' = 1.5.*\(0, 1\]"),
        (dict(hidden=[64, "x"]), r"'hidden'"),
        (dict(head="gaussian"), r"'head' = 'gaussian'.*auto or categorical or beta"),
        (dict(state_input="pixels"), r"'state_input'"),
        (dict(game="chess"), r"unknown game 'chess'"),
    ],
)
def test_bad_configs_raise_clear_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_mapping_layer_unknown_keys_and_game_section():
    cfg = TrainConfig.from_mapping(
        {"lr": 0.01, "game": {"num_states": 21}, "game.horizon": 8},
        game="linear_quadratic",
        algo="rspg",
    )
    assert cfg.algo == "rspg" and cfg.recurrent and cfg.lr == 0.01
    assert cfg.make_game().num_states == 21 and cfg.make_game().horizon == 8
    with pytest.raises(
        ValueError,
        match=r"unknown key 'learning_rate'; allowed keys: algo, "
        r"num_iterations",
    ):
        TrainConfig.from_mapping({"learning_rate": 1e-3}, game="linear_quadratic")
    with pytest.raises(ValueError, match=r"unknown parameter 'size'; allowed parameters"):
        TrainConfig.from_mapping({"game": {"size": 3}}, game="linear_quadratic")
    with pytest.raises(ValueError, match=r"'game' must be a mapping.*--game"):
        TrainConfig.from_mapping({"game": "macro"}, game="linear_quadratic")
    with pytest.raises(ValueError, match=r"'algo' = 'spg' disagrees with --algo 'rspg'"):
        TrainConfig.from_mapping({"algo": "spg"}, game="linear_quadratic", algo="rspg")
    merged = merge_mappings({"lr": 1, "game": {"a": 1, "b": 2}}, {"game": {"b": 3}}, None)
    assert merged == {"lr": 1, "game": {"a": 1, "b": 3}}


@pytest.mark.parametrize("name", ["spg_quick.yaml", "published.yaml"])
def test_example_configs_are_valid(name):
    import pathlib

    import yaml

    path = pathlib.Path(__file__).resolve().parent.parent / "params" / "configs" / name
    for game in ("linear_quadratic", "beach_bar_1d", "macro"):
        cfg = TrainConfig.from_mapping(
            yaml.safe_load(path.read_text()), game=game, algo="rspg", source=str(path)
        )
        assert cfg.num_iterations % cfg.eval_every == 0
