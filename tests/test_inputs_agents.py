"""agent.json: every entry that is used is checked; non-finite policies are refused by evaluation."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
from typer.testing import CliRunner

import mfax
from mfax.agents import DESCRIPTION_FILE, load_agent, save_agent
from mfax.cli import app
from mfax.evaluation import NonFiniteResultError
from mfax.networks import NetworkConfig, init_params

runner = CliRunner()


@pytest.fixture(scope="module")
def lq():
    return mfax.make_game("linear_quadratic", num_states=11, horizon=4)


@pytest.fixture()
def agent(tmp_path, lq):
    cfg = NetworkConfig(hidden=(8,), embed_dim=4)
    training = {
        "num_iterations": 20,
        "eval_every": 10,
        "num_envs": 8,
        "eval_num_envs": 4,
        "lr": 0.01,
        "gamma": 0.9,
        "hidden": [8],
        "embed_dim": 4,
    }
    return save_agent(
        tmp_path / "a",
        network=cfg,
        params=init_params(cfg, lq, jax.random.key(0)),
        game=lq,
        algorithm="spg",
        seed=3,
        gamma=0.9,
        training=training,
    )


def _edit(path, key, value):
    file = path / DESCRIPTION_FILE
    desc = json.loads(file.read_text())
    node = desc
    *parents, last = key.split(".")
    for p in parents:
        node = node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    file.write_text(json.dumps(desc))  # json writes float("nan") as NaN, which json reads back


_DELETE = object()


def test_valid_agent_loads(agent):
    a = load_agent(agent)
    assert a.gamma == 0.9 and a.eval_num_envs == 4


@pytest.mark.parametrize(
    "key, value, match",
    [
        ("gamma", "x", r"'gamma' = 'x' is not allowed"),
        ("gamma", "0.9", r"'gamma' = '0.9' is not allowed"),
        ("gamma", math.nan, r"'gamma' = nan is not allowed; expected a finite number"),
        ("gamma", math.inf, r"'gamma' = inf is not allowed; expected a finite number"),
        ("gamma", 5.0, r"'gamma' = 5.0 is not allowed; expected .*\(0, 1\]"),
        ("gamma", 0, r"'gamma' = 0 is not allowed"),
        ("gamma", True, r"'gamma' = True is not allowed"),
        ("seed", "x", r"'seed' = 'x' is not allowed"),
        ("seed", 1.5, r"'seed' = 1.5 is not allowed"),
        ("algorithm", "", r"'algorithm' = '' is not allowed"),
        ("algorithm", 3, r"'algorithm' = 3 has the wrong type"),
        ("num_states", True, r"'num_states' = True has the wrong type"),
        ("weights_sha256", 12, r"'weights_sha256' = 12 is not allowed"),
        ("training", "x", r"'training' = 'x' is not allowed; expected a mapping"),
        (
            "training.eval_num_envs",
            0,
            r"'training.eval_num_envs' = 0 is not allowed; expected null "
            r"or an integer >= 1",
        ),
        ("training.eval_num_envs", 5.0, r"'training.eval_num_envs' = 5.0 is not allowed"),
        ("training.eval_num_envs", "8", r"'training.eval_num_envs' = '8' is not allowed"),
        ("training.eval_num_envs", math.nan, r"'training.eval_num_envs' = nan .*finite number"),
        ("training.num_envs", -3, r"'training.num_envs' = -3 is not allowed"),
        ("training.num_envs", "x", r"'training.num_envs' = 'x' is not allowed"),
        ("training.gamma", 5.0, r"'training.gamma' = 5.0 is not allowed"),
        ("training.gamma", math.nan, r"'training.gamma' = nan .*finite number"),
        ("training.lr", "x", r"entry 'training' is invalid: .*'lr' = 'x' is not allowed"),
        ("training.lr", math.nan, r"entry 'training' is invalid: .*'lr' = nan .*finite number"),
        ("training.num_iterations", 0, r"entry 'training' is invalid: .*'num_iterations' = 0"),
        (
            "training.num_iterations",
            20.0,
            r"entry 'training' is invalid: .*'num_iterations' = 20.0",
        ),
        ("training.hidden", "big", r"entry 'training' is invalid: .*'hidden' = 'big'"),
    ],
)
def test_load_agent_checks_every_used_entry(agent, key, value, match):
    _edit(agent, key, value)
    with pytest.raises(ValueError, match=r"agent\.json: .*" + match):
        load_agent(agent)
    res = runner.invoke(app, ["evaluate", "--agent", str(agent), "--num-envs", "1"])
    assert res.exit_code == 2, res.output
    assert "agent.json" in res.output and res.output.startswith("Error:"), res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception


def test_rl_training_entry_checked_with_the_rl_config(tmp_path, lq):
    cfg = NetworkConfig(hidden=(8,), embed_dim=4)
    path = save_agent(
        tmp_path / "rl",
        network=cfg,
        params=init_params(cfg, lq, jax.random.key(0)),
        game=lq,
        algorithm="ippo",
        training={"num_envs": 2, "clip_eps": 0.2},
    )
    load_agent(path)
    _edit(path, "training.clip_eps", -1.0)
    with pytest.raises(ValueError, match=r"agent\.json: entry 'training' is invalid: .*clip_eps"):
        load_agent(path)


def test_free_form_training_of_other_algorithms(tmp_path, lq):
    cfg = NetworkConfig(hidden=(8,), embed_dim=4)
    path = save_agent(
        tmp_path / "x",
        network=cfg,
        params=init_params(cfg, lq, jax.random.key(0)),
        game=lq,
        algorithm="my_method",
        training={"note": "anything", "lr": "fast"},
    )
    assert load_agent(path).algorithm == "my_method"


def test_eval_num_envs_has_no_silent_fallback(agent, monkeypatch):
    """``eval_num_envs: null`` falls back to num_envs (8), not to the published 128."""
    _edit(agent, "training.eval_num_envs", None)
    assert load_agent(agent).eval_num_envs == 8
    _edit(agent, "training.num_envs", None)
    assert load_agent(agent).eval_num_envs == 128  # nothing recorded: the published default
    _edit(agent, "training", _DELETE)
    assert load_agent(agent).eval_num_envs == 128

    seen = []
    real = mfax.evaluation.evaluate_policy

    def spy(game, policy, key, num_envs=1, **kw):
        seen.append(num_envs)
        return real(game, policy, key, num_envs=2, **kw)

    monkeypatch.setattr(mfax.evaluation, "evaluate_policy", spy)
    _edit(agent, "training", {"eval_num_envs": 3})
    res = runner.invoke(app, ["evaluate", "--agent", str(agent)])
    assert res.exit_code == 0, res.output
    assert seen == [3]


# --- non-finite policies ------------------------------------------------------------------
@pytest.fixture()
def exploding(tmp_path, lq):
    """An agent whose parameters are finite but so large that its probabilities are NaN."""
    cfg = NetworkConfig(hidden=(8,), embed_dim=4)
    params = jax.tree_util.tree_map(lambda x: x * 1e30, init_params(cfg, lq, jax.random.key(0)))
    return save_agent(tmp_path / "big", network=cfg, params=params, game=lq, algorithm="spg")


def test_evaluate_policy_refuses_non_finite_probabilities(exploding):
    a = load_agent(exploding)
    raw = mfax.evaluate_policy(a.game, a, jax.random.key(0), 2, check_finite=False)
    assert not np.isfinite(np.asarray(raw.trajectory.policy)).all()  # the premise
    with pytest.raises(NonFiniteResultError, match="action probabilities are not finite"):
        mfax.evaluate_policy(a.game, a, jax.random.key(0), 2)
    # a NaN policy given as a callable is refused the same way
    S, A = a.game.num_states, a.game.num_actions
    with pytest.raises(ValueError, match="not finite"):
        mfax.evaluate_policy(
            a.game, lambda obs: jax.numpy.full((S, A), jax.numpy.nan), jax.random.key(0), 2
        )


def test_cli_evaluate_non_finite_is_an_error(tmp_path, exploding):
    out = tmp_path / "metrics.json"
    res = runner.invoke(
        app, ["evaluate", "--agent", str(exploding), "--num-envs", "2", "--json", str(out)]
    )
    assert res.exit_code == 1, res.output
    assert "not finite" in res.output and "exploitability: nan" not in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert not out.exists()
