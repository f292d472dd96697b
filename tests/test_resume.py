"""Interrupted training keeps its work and resumes bitwise; diverged runs keep a usable agent.

The interruption is simulated in-process (``interrupt_after``: the driver acts
as if Ctrl-C came after that many compiled calls); tests/test_interrupt.py
sends a real SIGINT to ``mfax train``.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

import mfax
from mfax.rl import RLConfig
from mfax.rl import run_training as rl_run_training
from mfax.training import TrainConfig, run_training, save_result
from mfax.training.checkpoint import STATE_FILE, STATE_META_FILE, load_checkpoint, read_meta
from mfax.training.run import resume_training

SPG = dict(
    game="linear_quadratic",
    game_params=dict(num_states=21, horizon=8),
    num_iterations=20,
    eval_every=5,
    num_envs=4,
    hidden=(16, 16),
    embed_dim=8,
    gru_hidden=8,
    lr=1e-2,
)
RL_GAME = dict(num_states=21, horizon=8, max_action=2, bar_location=10, common_noise=False)
RL = dict(
    num_iterations=6,
    eval_every=3,
    num_envs=2,
    num_agents=200,
    num_agents_per_env=16,
    num_updates_per_iteration=2,
    hidden=(16, 16),
    embed_dim=8,
    gru_hidden=8,
    critic_hidden=(16,),
    num_minibatches=2,
    buffer_size=1024,
    batch_size=64,
    lr=3e-3,
)


def no_seconds(curve):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in curve]


def assert_same_run(a, b):
    np.testing.assert_array_equal(a.losses, b.losses)
    la, lb = jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)
    assert len(la) == len(lb)
    for x, y in zip(la, lb):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert no_seconds(a.curve) == no_seconds(b.curve)


def status(path):
    return json.loads((path / "agent.json").read_text())["status"]


def spg_config(**changes):
    return TrainConfig(algo="spg", **{**SPG, **changes})


def rl_config(algo, **changes):
    return RLConfig(game="beach_bar_1d", game_params=RL_GAME, algo=algo, **{**RL, **changes})


@pytest.fixture(scope="module")
def spg_full():
    return run_training(spg_config(), seed=3, progress=False)


def test_spg_interrupt_then_resume_is_bitwise_the_uninterrupted_run(spg_full, tmp_path):
    # at most 3 iterations per call, never across an evaluation: 0-3, 3-5, 5-8; interrupted
    # after 3 calls = iteration 8, inside the second interval (the agent is from iteration 5)
    cut = run_training(spg_config(), seed=3, progress=False, chunk_iterations=3, interrupt_after=3)
    assert cut.interrupted and cut.status == "interrupted" and cut.diverged_at is None
    assert cut.iterations_run == 8 and len(cut.losses) == 8
    assert [r["iteration"] for r in cut.curve] == [0, 5]
    assert "interrupted after 8 of 20 iterations" in cut.message
    np.testing.assert_array_equal(cut.losses, spg_full.losses[:8])
    out = save_result(cut, tmp_path / "agent")
    assert status(out) == "interrupted"
    assert (out / STATE_FILE).exists() and read_meta(out)["iteration"] == 8
    # the saved agent is the last evaluated one
    agent = mfax.load_agent(out)
    assert agent.description["metrics"]["iterations"] == 5
    assert agent.description["metrics"]["iterations_run"] == 8

    # resumed and interrupted again before any evaluation: the saved agent stays the same
    once = resume_training(out, chunk_iterations=1, interrupt_after=1)
    assert once.interrupted and once.iterations_run == 9 and len(once.curve) == 2
    jax.tree_util.tree_map(np.testing.assert_array_equal, once.params, cut.params)

    # resumed with other call sizes (and interrupted once more): still the same run
    again = resume_training(out, chunk_iterations=2, interrupt_after=2)
    assert again.interrupted and again.iterations_run == 12  # 8-10, 10-12
    assert no_seconds(again.curve) == no_seconds(spg_full.curve[:3])  # evaluated at 10
    np.testing.assert_array_equal(again.losses, spg_full.losses[:12])
    save_result(again, out)
    assert status(out) == "interrupted" and read_meta(out)["iteration"] == 12
    done = resume_training(out)
    assert not done.interrupted and done.status == "ok"
    assert_same_run(done, spg_full)
    save_result(done, out)
    assert status(out) == "ok" and read_meta(out)["status"] == "ok"

    # the training state holds everything: parameters, optimiser state, step, keys
    ckpt = load_checkpoint(out, done.trainer)
    assert int(ckpt.state.step) == 20 and int(ckpt.state.failed_at) == -1
    assert jax.dtypes.issubdtype(ckpt.state.key.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(
        jax.random.key_data(ckpt.state.key), jax.random.key_data(done.progress.state.key)
    )
    jax.tree_util.tree_map(
        np.testing.assert_array_equal,
        ckpt.state.opt_state,
        jax.device_get(done.progress.state.opt_state),
    )


def test_finished_run_trains_further_with_a_larger_num_iterations(spg_full, tmp_path):
    out = save_result(spg_full, tmp_path / "agent")
    with pytest.raises(ValueError, match="already run 20 iterations"):
        resume_training(out, num_iterations=10)
    more = resume_training(out, num_iterations=30)
    assert [r["iteration"] for r in more.curve] == [0, 5, 10, 15, 20, 25, 30]
    assert no_seconds(more.curve[:5]) == no_seconds(spg_full.curve)
    np.testing.assert_array_equal(more.losses[:20], spg_full.losses)
    assert len(more.losses) == 30 and np.all(np.isfinite(more.losses))
    assert more.trainer.config.num_iterations == 30


@pytest.mark.parametrize("algo", ["ippo", pytest.param("m_omd", marks=pytest.mark.slow)])
def test_rl_interrupt_then_resume_is_bitwise(algo, tmp_path):
    cfg = rl_config(algo)
    full = rl_run_training(cfg, seed=1, progress=False)
    # calls 0-2, 2-3, 3-5: stopped inside the second evaluation interval
    cut = rl_run_training(cfg, seed=1, progress=False, chunk_iterations=2, interrupt_after=3)
    assert cut.interrupted and cut.iterations_run == 5
    assert [r["iteration"] for r in cut.curve] == [0, 3]
    out = save_result(cut, tmp_path / algo)
    assert status(out) == "interrupted"
    done = resume_training(out, chunk_iterations=1)
    assert done.status == "ok"
    assert_same_run(done, full)


def test_resume_refuses_what_it_cannot_continue(spg_full, tmp_path):
    out = save_result(spg_full, tmp_path / "agent")
    runner = CliRunner()
    from mfax.cli import app

    res = runner.invoke(app, ["train", "--resume", str(out)])
    assert res.exit_code == 0 and "nothing to resume" in res.output
    res = runner.invoke(app, ["train", "--resume", str(out), "--set", "lr=0.5"])
    assert res.exit_code == 2 and "lr" in res.output and "only num_iterations" in res.output
    res = runner.invoke(app, ["train", "--resume", str(out), "--algo", "rspg"])
    assert res.exit_code == 2 and "disagrees" in res.output
    res = runner.invoke(app, ["train", "--resume", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "nothing to resume" in res.output
    res = runner.invoke(app, ["train", "--game", "linear_quadratic"])
    assert res.exit_code == 2 and "--algo" in res.output and "--resume" in res.output
    # a damaged training state is a clear error, not a wrong run
    (out / STATE_FILE).write_bytes((out / STATE_FILE).read_bytes()[:-10])
    with pytest.raises(ValueError, match="sha256"):
        resume_training(out, num_iterations=25)
    meta = json.loads((out / STATE_META_FILE).read_text())
    meta["status"] = "diverged"
    (out / STATE_META_FILE).write_text(json.dumps(meta))
    res = runner.invoke(app, ["train", "--resume", str(out), "--set", "num_iterations=25"])
    assert res.exit_code == 2 and "diverged" in res.output


def test_huge_learning_rate_diverges_keeping_a_policy_with_finite_probabilities(tmp_path):
    """lr = 1e12: the first update's parameters are finite but overflow the logits."""
    result = run_training(spg_config(lr=1e12), seed=0, progress=False)
    assert result.status == "diverged" and result.diverged_at is not None
    assert "diverged" in result.message
    out = save_result(result, tmp_path / "spg")
    assert status(out) == "diverged"
    agent = mfax.load_agent(out)
    traj = mfax.rollout(agent.game, agent, jax.random.key(7), 16)
    assert np.all(np.isfinite(np.asarray(traj.policy)))
    r = mfax.evaluate_policy(agent.game, agent, jax.random.key(8), num_envs=16, gamma=agent.gamma)
    assert np.isfinite(float(r.exploitability))
    with pytest.raises(ValueError, match="diverged"):
        resume_training(out)


@pytest.mark.slow  # ~17 s; CI runs it (the SPG divergence check stays by default)
def test_rl_huge_learning_rate_diverges_keeping_finite_probabilities(tmp_path):
    result = rl_run_training(rl_config("ippo", lr=1e12), seed=0, progress=False)
    assert result.status == "diverged"
    agent = mfax.load_agent(save_result(result, tmp_path / "ippo"))
    traj = mfax.rollout(agent.game, agent, jax.random.key(7), 8)
    assert np.all(np.isfinite(np.asarray(traj.policy)))


def test_nonfinite_evaluation_goes_back_to_the_last_finite_one(monkeypatch):
    """The driver's second line of defence: a policy that evaluates to NaN is not kept."""
    import mfax.training.spg as spg

    monkeypatch.setattr(spg, "policy_probs_finite", lambda *args: True)  # guard off
    result = run_training(spg_config(lr=1e12, embed_dim=4), seed=0, progress=False)
    assert result.status == "diverged" and "non-finite exploitability" in result.message
    assert all(np.isfinite(row["exploitability"]) for row in result.curve)
    traj = mfax.rollout(result.trainer.game, result.policy, jax.random.key(7), 8)
    assert np.all(np.isfinite(np.asarray(traj.policy)))


@pytest.mark.slow  # ~16 s; CI runs it (tests/test_interrupt.py stays by default)
def test_train_seeds_stops_on_the_same_interrupt():
    """One mechanism: the vmapped multi-seed driver obeys the same guard."""
    from mfax.multiseed import train_seeds
    from mfax.training.interrupt import interrupt_guard

    cfg = spg_config(num_iterations=10)
    with interrupt_guard(after_calls=2):
        results = train_seeds(cfg, [0, 1], progress=False, raise_on_interrupt=False)
    assert [r.status for r in results] == ["interrupted", "interrupted"]
    assert all(r.curve[-1]["iteration"] < 10 for r in results)
    with pytest.raises(KeyboardInterrupt), interrupt_guard(after_calls=2):
        train_seeds(cfg, [0, 1], progress=False)  # a pipeline job fails, keeping nothing


@pytest.mark.slow  # ~30 s; CI runs it (the single-seed and RL resumes stay in the default suite)
def test_multiseed_checkpoint_resumes_bitwise(tmp_path):
    """A multi-seed run stopped (Ctrl-C, SIGTERM, preemption) and started again with the
    same checkpoint folder continues from its last evaluation: bitwise the run never
    stopped; a checkpoint of another config is ignored."""
    from mfax.multiseed import train_seeds

    cfg = spg_config()
    full = train_seeds(cfg, [0, 1], progress=False)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_seeds(
            cfg, [0, 1], progress=False, checkpoint=ckpt, checkpoint_seconds=0.0, interrupt_after=3
        )
    saved = sorted(p.name for p in ckpt.iterdir())
    assert saved == ["seed_0", "seed_1"]
    meta = read_meta(ckpt / "seed_0")
    assert meta["evaluated_iteration"] == meta["iteration"] == 10
    again = train_seeds(cfg, [0, 1], progress=False, checkpoint=ckpt, checkpoint_seconds=0.0)
    # continued, not redone: the first evaluations' timings are the checkpoint's
    assert again[0].curve[2]["seconds"] == meta["train_seconds"]
    for a, b in zip(full, again):
        assert [r["exploitability"] for r in a.curve] == [r["exploitability"] for r in b.curve]
        np.testing.assert_array_equal(a.losses, b.losses)
        for x, y in zip(jax.tree_util.tree_leaves(a.params), jax.tree_util.tree_leaves(b.params)):
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    other = train_seeds(cfg.replace(lr=cfg.lr * 2), [0, 1], progress=False, checkpoint=ckpt)
    assert other[0].curve[0]["iteration"] == 0 and len(other[0].losses) == cfg.num_iterations


def test_train_seeds_command_continues_from_its_checkpoint(tmp_path):
    """`mfax train-seeds --checkpoint DIR` (the pipeline's train job) continues a stopped
    run's saved state and removes the folder once the model is saved."""
    import yaml

    from mfax.cli import app
    from mfax.multiseed import train_seeds

    cfg = spg_config()
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):  # a job stopped by SIGTERM / preemption
        train_seeds(
            cfg, [0, 1], progress=False, checkpoint=ckpt, checkpoint_seconds=0.0, interrupt_after=3
        )
    saved = read_meta(ckpt / "seed_1")
    mapping = {k: v for k, v in cfg.to_dict().items() if k not in ("game", "game_params")}
    mapping["game"] = dict(cfg.game_params)
    mapping["seeds"] = [0, 1]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(mapping))
    out = tmp_path / "model"
    r = CliRunner().invoke(
        app,
        [
            "train-seeds",
            "--game",
            cfg.game,
            "--algo",
            "spg",
            "--config",
            str(tmp_path / "config.yaml"),
            "--out",
            str(out),
            "--no-progress",
            "--checkpoint",
            str(ckpt),
        ],
    )
    assert r.exit_code == 0, r.output
    assert not ckpt.exists()
    curve = mfax.load_agent(out / "seed_1").curve()
    assert curve[2]["seconds"] == saved["train_seconds"]  # continued, not redone
    full = train_seeds(cfg, [0, 1], progress=False)[1]
    assert [row["exploitability"] for row in curve] == [row["exploitability"] for row in full.curve]
