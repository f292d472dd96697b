"""Model-free learners (mfax.rl): IPPO, RIPPO, M-OMD on a tiny beach bar.

One short run per learner (module fixture, compiled once) serves most tests;
the reproducibility and CLI tests reuse the cached compiled functions.
"""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from typer.testing import CliRunner

import mfax
from mfax.networks import network_policy
from mfax.rl import RLConfig, agent_probs, make_rownet, make_train, run_training, save_result
from mfax.rl.m_omd import policy_params

GAME = dict(num_states=21, horizon=8, max_action=2, bar_location=10, common_noise=False)
SMALL = dict(
    num_iterations=10,
    eval_every=5,
    num_envs=2,
    num_agents=1000,
    num_agents_per_env=32,
    num_updates_per_iteration=10,
    hidden=(32, 32),
    embed_dim=16,
    gru_hidden=16,
    critic_hidden=(32,),
    num_minibatches=2,
    buffer_size=4096,
    batch_size=128,
    lr=3e-3,
)
ALGOS = ("ippo", "rippo", "m_omd")


#: M-OMD needs more updates than PPO here (epsilon and the learning rate decay over the run)
LONGER = {"m_omd": dict(num_iterations=20, eval_every=10)}


def config(algo: str, **changes) -> RLConfig:
    return RLConfig(
        game="beach_bar_1d",
        game_params=GAME,
        algo=algo,
        **{**SMALL, **LONGER.get(algo, {}), **changes},
    )


@pytest.fixture(scope="module")
def results():
    return {algo: run_training(config(algo), seed=0, progress=False) for algo in ALGOS}


@pytest.mark.parametrize("algo", ALGOS)
def test_learner_improves(results, algo):
    curve = results[algo].curve
    before, after = curve[0]["exploitability"], curve[-1]["exploitability"]
    assert np.isfinite(after) and after >= -1e-4
    assert after < 0.2 * before, (algo, before, after)
    assert results[algo].diverged_at is None


@pytest.mark.parametrize("algo", ALGOS)
def test_mean_field_conversion_matches_agent(results, algo):
    """The mean-field policy over all grid states equals the learner's per-agent probabilities."""
    result = results[algo]
    trainer = result.trainer
    game, params = trainer.game, result.params
    rownet = make_rownet(trainer.network, game)
    E = 3
    traj = mfax.rollout(game, trainer.policy(params), jax.random.key(5), E, num_agents=500)
    T, S = game.horizon, game.num_states
    states = jax.random.randint(jax.random.key(6), (T, E), 0, S)
    per_agent = agent_probs(rownet, params, states, traj.obs)  # RIPPO: GRU over the history
    pol = network_policy(trainer.network, game, params)

    def mf_env(obs_seq):
        def step(carry, xs):
            obs, t = xs
            probs, carry = pol.apply(pol.params, carry, obs, t)
            return carry, probs

        return jax.lax.scan(step, pol.initial_carry(), (obs_seq, jnp.arange(T)))[1]

    mf = jax.vmap(mf_env, 1, 1)(traj.obs)  # [T, E, S, A]
    picked = jnp.take_along_axis(mf, states[..., None, None], 2)[:, :, 0]
    np.testing.assert_allclose(np.asarray(per_agent), np.asarray(picked), atol=2e-5)
    # the rollout used exactly this mean-field policy
    np.testing.assert_allclose(np.asarray(traj.policy), np.asarray(mf), atol=2e-5)
    if algo == "m_omd":  # softmax(Q / tau), Q being the network's raw head
        q_params = jax.tree_util.tree_map(lambda x: x, params)
        q_params["params"]["head"] = jax.tree_util.tree_map(
            lambda x: x * trainer.config.tau, params["params"]["head"]
        )
        q = rownet.logits(
            q_params, rownet.state_table(q_params)[states] + rownet.obs_table(q_params, traj.obs)
        )
        np.testing.assert_allclose(
            np.asarray(jax.nn.softmax(q / trainer.config.tau, -1)), np.asarray(per_agent), atol=2e-5
        )
        back = policy_params(q_params, trainer.config.tau)
        np.testing.assert_allclose(
            np.asarray(back["params"]["head"]["kernel"]),
            np.asarray(params["params"]["head"]["kernel"]),
            rtol=1e-6,
        )


def test_reproducible_bitwise(results):
    again = run_training(config("ippo"), seed=0, progress=False)
    first = results["ippo"]
    for a, b in zip(
        jax.tree_util.tree_leaves(first.params), jax.tree_util.tree_leaves(again.params)
    ):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert [r["exploitability"] for r in first.curve] == [r["exploitability"] for r in again.curve]
    other = run_training(config("ippo"), seed=1, progress=False)
    assert not all(
        np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(
            jax.tree_util.tree_leaves(first.params), jax.tree_util.tree_leaves(other.params)
        )
    )


@pytest.mark.parametrize(
    "changes, key, words",
    [
        (dict(num_minibatches=3), "num_minibatches", ["3", "divisor", "64"]),
        (dict(algo="m_omd", buffer_size=100), "buffer_size", ["100", "512", "num_agents_per_env"]),
        (dict(algo="m_omd", batch_size=5000), "batch_size", ["5000", "4096"]),
        (dict(num_updates_per_iteration=0), "num_updates_per_iteration", ["0", ">= 1"]),
        (dict(clip_eps=0.0), "clip_eps", ["(0, inf)"]),
        (dict(gae_lambda=1.5), "gae_lambda", ["[0, 1]"]),
        (dict(tau=-1.0), "tau", ["(0, inf)"]),
        (dict(epsilon_start=2.0), "epsilon_start", ["[0, 1]"]),
        (dict(algo="m_omd", head="beta"), "head", ["categorical"]),
        (dict(algo="ppo"), "algo", ["ippo", "rippo", "m_omd"]),
        (dict(num_iterations=7), "num_iterations", ["multiple of eval_every"]),
        (dict(reward_scale=0.0), "reward_scale", ["> 0"]),
    ],
)
def test_bad_hyper_parameters(changes, key, words):
    algo = changes.pop("algo", "ippo")
    with pytest.raises(ValueError) as err:
        config(algo, **changes)  # raises in the dataclass: nothing is built or compiled
    msg = str(err.value)
    assert repr(key) in msg, msg
    for w in words:
        assert w in msg, (w, msg)


def test_from_mapping_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown key 'lr_rate'.*allowed keys"):
        RLConfig.from_mapping({"lr_rate": 1.0}, game="beach_bar_1d", algo="ippo")
    with pytest.raises(ValueError, match="num_states"):
        RLConfig.from_mapping({"game": {"num_states": 1}}, game="beach_bar_1d", algo="ippo")
    cfg = RLConfig.from_mapping(
        {**SMALL, "hidden": [32, 32], "game": GAME}, game="beach_bar_1d", algo="rippo"
    )
    assert cfg == config("rippo")
    with pytest.raises(TypeError):
        make_train(object())


def test_saved_agents_load_and_evaluate(results, tmp_path):
    for algo in ("rippo", "m_omd"):
        out = save_result(results[algo], tmp_path / algo)
        agent = mfax.load_agent(out)
        assert agent.algorithm == algo
        assert agent.description["training"]["num_agents_per_env"] == 32
        r = mfax.evaluate_policy(
            agent.game, agent, jax.random.key(0), num_envs=2, gamma=agent.gamma
        )
        # deterministic game: the exploitability does not depend on the evaluation key
        assert float(r.exploitability) == pytest.approx(
            results[algo].curve[-1]["exploitability"], rel=1e-4, abs=1e-4
        )


def test_cli_train_and_evaluate(results, tmp_path):
    from mfax.cli import app

    runner = CliRunner()
    out = tmp_path / "ippo"
    sets = [f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in SMALL.items()]
    args = ["train", "--game", "beach_bar_1d", "--algo", "ippo", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    for k, v in GAME.items():
        args += ["--param", f"{k}={json.dumps(v)}"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "ippo on beach_bar_1d" in res.output
    desc = json.loads((out / "agent.json").read_text())
    assert desc["algorithm"] == "ippo" and desc["format"] == "mfax-agent"
    res = runner.invoke(app, ["evaluate", "--agent", str(out), "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["exploitability"] == pytest.approx(
        results["ippo"].curve[-1]["exploitability"], rel=1e-4, abs=1e-4
    )
    bad = runner.invoke(
        app,
        [
            "train",
            "--game",
            "beach_bar_1d",
            "--algo",
            "m_omd",
            "--out",
            str(tmp_path / "x"),
            "--set",
            "buffer_size=10",
        ],
    )
    assert bad.exit_code == 2 and "buffer_size" in bad.output
