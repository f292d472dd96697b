"""Agents on disk: save -> load -> evaluate, clear errors for bad files, the CLI."""

from __future__ import annotations

import csv
import json
import os

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

import mfax
from mfax.agents import (
    CURVE_FILE,
    DESCRIPTION_FILE,
    WEIGHTS_FILE,
    Agent,
    load_agent,
    read_curve,
    save_agent,
)
from mfax.cli import app
from mfax.networks import NetworkConfig, init_params, network_policy


@pytest.fixture(scope="module")
def lq():
    return mfax.make_game("linear_quadratic", num_states=21, horizon=8)


def _perturbed_params(cfg, game, seed=0):
    params = init_params(cfg, game, jax.random.key(seed))
    noise = jax.random.key(seed + 100)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(noise, len(leaves))
    return jax.tree_util.tree_unflatten(
        tree, [x + 0.1 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)]
    )


@pytest.mark.parametrize("recurrent", [False, True])
def test_save_load_evaluate_identical(tmp_path, lq, recurrent):
    cfg = NetworkConfig(recurrent=recurrent, hidden=(16, 16), embed_dim=8, gru_hidden=8)
    params = _perturbed_params(cfg, lq)
    curve = [
        {"iteration": 0, "seconds": 0.0, "exploitability": 3.5},
        {"iteration": 10, "seconds": 0.25, "exploitability": 1.25},
    ]
    out = save_agent(
        tmp_path / "agent",
        network=cfg,
        params=params,
        game=lq,
        algorithm="rspg" if recurrent else "spg",
        seed=7,
        gamma=0.9,
        training={"lr": 1e-3},
        metrics={"exploitability": 1.25},
        curve=curve,
    )
    assert sorted(os.listdir(out)) == sorted([WEIGHTS_FILE, DESCRIPTION_FILE, CURVE_FILE])
    agent = load_agent(out)
    assert isinstance(agent, Agent) and isinstance(agent, mfax.MeanFieldPolicy)
    assert agent.game == lq and agent.gamma == 0.9 and agent.network == cfg
    desc = agent.description
    assert desc["seed"] == 7 and desc["game"]["params"] == lq.params.to_dict()
    assert desc["algorithm"] == ("rspg" if recurrent else "spg")
    assert desc["versions"]["jax"] == jax.__version__ and desc["format_version"] == 2
    assert "normalised" in desc["observation"]
    assert agent.curve() == curve
    key = jax.random.key(3)
    before = mfax.evaluate_policy(lq, network_policy(cfg, lq, params), key, 4, 0.9)
    after = mfax.evaluate_policy(agent.game, agent, key, 4, agent.gamma)
    for field in ("exploitability", "policy_return", "best_response_return"):
        assert float(getattr(before, field)) == float(getattr(after, field))
    np.testing.assert_array_equal(before.trajectory.policy, after.trajectory.policy)
    for x, y in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(agent.params)):
        np.testing.assert_array_equal(x, y)


@pytest.fixture()
def saved(tmp_path, lq):
    cfg = NetworkConfig(hidden=(16,), embed_dim=8)
    return save_agent(
        tmp_path / "a",
        network=cfg,
        params=init_params(cfg, lq, jax.random.key(0)),
        game=lq,
        algorithm="spg",
    )


def _edit_json(path, **changes):
    desc = json.loads((path / DESCRIPTION_FILE).read_text())
    for k, v in changes.items():
        if "." in k:
            a, b = k.split(".")
            desc[a][b] = v
        else:
            desc[k] = v
    (path / DESCRIPTION_FILE).write_text(json.dumps(desc))


def test_missing_files(tmp_path, saved):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_agent(tmp_path / "nowhere")
    (saved / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"weights\.msgpack: missing"):
        load_agent(saved)
    (saved / DESCRIPTION_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=r"agent\.json: missing"):
        load_agent(saved)
    stray = saved.parent / "file.txt"
    stray.write_text("x")
    with pytest.raises(ValueError, match="an agent is a directory"):
        load_agent(stray)


def test_truncated_files(saved):
    data = (saved / WEIGHTS_FILE).read_bytes()
    (saved / WEIGHTS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"weights\.msgpack.*(truncated|corrupt)"):
        load_agent(saved)
    _edit_json(saved, weights_sha256=None)  # without the checksum: msgpack itself fails
    with pytest.raises(ValueError, match=r"weights\.msgpack: cannot be read as msgpack"):
        load_agent(saved)
    text = (saved / DESCRIPTION_FILE).read_text()
    (saved / DESCRIPTION_FILE).write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"agent\.json: not valid JSON"):
        load_agent(saved)


def test_incompatible_version(saved):
    _edit_json(saved, format_version=1)
    with pytest.raises(
        ValueError, match=r"agent\.json: format_version 1 .*former network.*retrain"
    ):
        load_agent(saved)
    _edit_json(saved, format_version=99)
    with pytest.raises(ValueError, match=r"agent\.json: format_version 99.*newer mfax"):
        load_agent(saved)
    _edit_json(saved, format="something-else", format_version=2)
    with pytest.raises(ValueError, match="not an mfax agent"):
        load_agent(saved)


def test_mismatched_game_and_shapes(saved, lq):
    _edit_json(saved, num_states=99)
    with pytest.raises(ValueError, match=r"agent\.json: num_states = 99 but game"):
        load_agent(saved)
    # a game that fits the stored sizes but not the weights
    _edit_json(saved, num_states=31, **{"game.params": {**lq.params.to_dict(), "num_states": 31}})
    with pytest.raises(
        ValueError,
        match=r"weights\.msgpack: parameter 'params/state_embed/"
        r"embedding' has shape \(21, 8\).*need \(31, 8\)",
    ):
        load_agent(saved)
    _edit_json(saved, **{"game.params": {"num_states": 21, "horizon": 8, "bogus": 1}})
    with pytest.raises(ValueError, match=r"agent\.json: the game cannot be rebuilt.*'bogus'"):
        load_agent(saved)


def test_mismatched_network(saved):
    desc = json.loads((saved / DESCRIPTION_FILE).read_text())
    desc["network"]["hidden"] = [16, 16]
    (saved / DESCRIPTION_FILE).write_text(json.dumps(desc))
    with pytest.raises(ValueError, match=r"do not fit the network.*missing params/hidden_1"):
        load_agent(saved)
    desc["network"] = {"hidden": [16], "depth": 3}
    (saved / DESCRIPTION_FILE).write_text(json.dumps(desc))
    with pytest.raises(ValueError, match=r"invalid network description.*'depth'"):
        load_agent(saved)


def test_save_rejects_wrong_params(tmp_path, lq):
    cfg = NetworkConfig(hidden=(16,), embed_dim=8)
    other = init_params(NetworkConfig(hidden=(32,), embed_dim=8), lq, jax.random.key(0))
    with pytest.raises(
        ValueError,
        match=r"parameter 'params/first/(bias|kernel)' has shape \(.*\), but the network and "
        r"game need",
    ):
        save_agent(tmp_path / "x", network=cfg, params=other, game=lq, algorithm="spg")
    bad = jax.tree_util.tree_map(lambda x: x * np.nan, init_params(cfg, lq, jax.random.key(0)))
    with pytest.raises(ValueError, match="NaN"):
        save_agent(tmp_path / "x", network=cfg, params=bad, game=lq, algorithm="spg")
    assert not (tmp_path / "x" / DESCRIPTION_FILE).exists()


@pytest.mark.slow  # ~30 s; CI runs it (test_rl.py::test_cli_train_and_evaluate stays by default)
def test_cli_train_then_evaluate(tmp_path):
    runner = CliRunner()
    config = tmp_path / "rspg.yaml"
    config.write_text(
        "num_iterations: 40\neval_every: 20\nlr: 0.01\nhidden: [32, 32]\n"
        "embed_dim: 16\ngru_hidden: 16\ngame:\n  num_states: 21\n"
    )
    out = tmp_path / "models" / "rspg"
    res = runner.invoke(
        app,
        [
            "train",
            "--game",
            "linear_quadratic",
            "--algo",
            "rspg",
            "--config",
            str(config),
            "--set",
            "num_envs=8",
            "--param",
            "horizon=8",
            "--out",
            str(out),
            "--seed",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out / CURVE_FILE)))
    assert [int(r["iteration"]) for r in rows] == [0, 20, 40]
    assert set(rows[0]) >= {
        "iteration",
        "seconds",
        "exploitability",
        "policy_return",
        "best_response_return",
    }
    assert float(rows[-1]["exploitability"]) < 0.8 * float(rows[0]["exploitability"])
    desc = json.loads((out / DESCRIPTION_FILE).read_text())
    assert desc["algorithm"] == "rspg" and desc["network"]["recurrent"] is True
    assert desc["game"]["params"]["num_states"] == 21 and desc["game"]["params"]["horizon"] == 8
    assert desc["seed"] == 1 and desc["training"]["num_envs"] == 8
    assert read_curve(out / CURVE_FILE)[-1]["iteration"] == 40

    metrics = tmp_path / "reports" / "metrics.json"
    res = runner.invoke(
        app,
        ["evaluate", "--agent", str(out), "--num-envs", "4", "--seed", "2", "--json", str(metrics)],
    )
    assert res.exit_code == 0, res.output
    assert "exploitability:" in res.output
    got = json.loads(metrics.read_text())
    agent = load_agent(out)
    ref = mfax.evaluate_policy(agent.game, agent, jax.random.key(2), 4)
    assert got["exploitability"] == float(ref.exploitability)
    assert got["policy_return"] == float(ref.policy_return)
    assert got["num_envs"] == 4 and got["algorithm"] == "rspg"

    # errors: clear messages, no traceback
    for args, match in [
        (["--set", "learning_rate=1"], "unknown key 'learning_rate'; allowed keys"),
        (["--set", "game.size=3"], "unknown parameter 'size'"),
        (["--set", "lr=-1"], "'lr' = -1 is not allowed"),
        (["--config", str(tmp_path / "missing.yaml")], "does not exist"),
    ]:
        res = runner.invoke(
            app,
            [
                "train",
                "--game",
                "linear_quadratic",
                "--algo",
                "spg",
                "--out",
                str(tmp_path / "bad"),
                *args,
            ],
        )
        assert res.exit_code == 2 and match in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit)
    res = runner.invoke(app, ["evaluate", "--agent", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "does not exist" in res.output
