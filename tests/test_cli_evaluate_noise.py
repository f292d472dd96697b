"""`mfax evaluate --noise sampled|exact --best-response hindsight|adapted`: the numbers are
the library's, the output says which exploitability it shows, the default output keeps its
keys."""

from __future__ import annotations

import json

import jax
import pytest
from typer.testing import CliRunner

import mfax
from mfax.agents import load_agent, save_agent
from mfax.cli import app
from mfax.networks import NetworkConfig, init_params

runner = CliRunner()
CFG = NetworkConfig(hidden=(8,), embed_dim=4)
DEFAULT_KEYS = {
    "game",
    "algorithm",
    "agent",
    "num_envs",
    "seed",
    "gamma",
    "exploitability",
    "policy_return",
    "best_response_return",
    "exploitability_undiscounted",
    "policy_return_undiscounted",
    "best_response_return_undiscounted",
}


def _agent(path, game):
    training = {
        "num_iterations": 2,
        "eval_every": 1,
        "num_envs": 2,
        "eval_num_envs": 2,
        "lr": 0.01,
        "gamma": 0.9,
        "hidden": [8],
        "embed_dim": 4,
    }
    return save_agent(
        path,
        network=CFG,
        params=init_params(CFG, game, jax.random.key(1)),
        game=game,
        algorithm="spg",
        seed=0,
        gamma=0.9,
        training=training,
    )


@pytest.fixture(scope="module")
def bar_agent(tmp_path_factory):
    # random bar 1..5 x closure coin at T // 2 = 2: 10 paths, the coin drawn after reset
    game = mfax.make_game("beach_bar_1d", num_states=7, horizon=4, max_action=1)
    return _agent(tmp_path_factory.mktemp("bar") / "a", game)


@pytest.fixture(scope="module")
def macro_agent(tmp_path_factory):
    game = mfax.make_game("macro", num_wealth=12, num_income=3, num_actions=5, horizon=6, nu=0.3)
    return _agent(tmp_path_factory.mktemp("macro") / "a", game)


def _evaluate(tmp_path, agent, *flags):
    out = tmp_path / "m.json"
    res = runner.invoke(
        app, ["evaluate", "--agent", str(agent), "--seed", "5", "--json", str(out), *flags]
    )
    assert res.exit_code == 0, res.output
    return res.output, json.loads(out.read_text())


def _library(agent, **kwargs):
    a = load_agent(agent)
    return mfax.evaluate_policy(
        a.game, a, jax.random.key(5), kwargs.pop("num_envs", 2), gamma=a.gamma, **kwargs
    )


def test_default_output_keeps_its_keys_and_says_hindsight(tmp_path, bar_agent):
    out, got = _evaluate(tmp_path, bar_agent)
    assert set(got) == DEFAULT_KEYS | {"noise", "best_response"}
    assert got["noise"] == "sampled" and got["best_response"] == "hindsight"
    assert got["exploitability"] == float(_library(bar_agent).exploitability)
    assert "kind: sampled noise, hindsight best response" in out and "upper bound" in out


def test_exact_adapted_with_hindsight_beside(tmp_path, bar_agent):
    out, got = _evaluate(tmp_path, bar_agent, "--noise", "exact", "--best-response", "adapted")
    adapted = _library(bar_agent, noise="exact", best_response="adapted")
    hindsight = _library(bar_agent, noise="exact", best_response="hindsight")
    assert got["noise"] == "exact" and got["best_response"] == "adapted"
    assert got["num_paths"] == 10
    assert (
        got["exploitability"]
        == got["exploitability_exact_adapted"]
        == float(adapted.exploitability)
    )
    assert got["policy_return"] == float(adapted.policy_return)
    assert got["exploitability_exact_hindsight"] == float(hindsight.exploitability)
    assert got["exploitability_exact_adapted"] < got["exploitability_exact_hindsight"]
    assert "exploitability_lower" not in got  # a finite tree needs no bracket
    assert "kind: exact noise, adapted best response" in out
    assert "exploitability_exact_hindsight: " in out


def test_macro_adapted_is_the_bracket(tmp_path, macro_agent):
    out, got = _evaluate(tmp_path, macro_agent, "--best-response", "adapted", "--num-envs", "4")
    r = _library(macro_agent, num_envs=4, noise="sampled", best_response="adapted")
    assert got["best_response"] == "hindsight"  # what `exploitability` is
    assert (
        got["exploitability"]
        == got["exploitability_sampled_hindsight"]
        == got["exploitability_upper"]
        == float(r.exploitability)
    )
    for name in ("lower", "lower_se", "upper", "upper_se"):
        assert got[f"exploitability_{name}"] == float(getattr(r, f"exploitability_{name}")), name
    assert got["exploitability_lower"] <= got["exploitability_upper"] * (1 + 1e-6)
    assert "lies in [" in out and "standard errors" in out


@pytest.mark.parametrize(
    "flags, match",
    [
        (["--noise", "maybe"], "--noise = 'maybe' is not allowed; expected sampled"),
        (["--best-response", "oracle"], "--best-response = 'oracle' is not allowed"),
        (["--noise", "exact"], "cannot be enumerated"),
    ],
)
def test_bad_flags_are_clear_errors(macro_agent, flags, match):
    res = runner.invoke(app, ["evaluate", "--agent", str(macro_agent), *flags])
    assert res.exit_code == 2 and match in res.output, res.output
