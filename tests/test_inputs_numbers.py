"""Numbers typed by a user: every notation is a number, nan / inf are "expected a finite number".

The training itself is replaced by a stub that records the config it was given, so
these tests check what the command line made of the input without compiling anything.
"""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

import mfax
import mfax.rl
import mfax.training
from mfax.cli import app, parse_assignments
from mfax.rl import RLConfig
from mfax.training import TrainConfig

runner = CliRunner()


class _Stop(Exception):
    """Raised by the stub trainer: the command got as far as training."""


@pytest.fixture()
def trained(monkeypatch):
    """Replace SPG and RL training by a stub; returns the list of configs it received."""
    seen = []

    def fake(cfg, seed=0, **kw):
        seen.append(cfg)
        raise _Stop

    monkeypatch.setattr(mfax.training, "run_training", fake)
    monkeypatch.setattr(mfax.rl, "run_training", fake)
    return seen


def _train(tmp_path, *args, algo="spg"):
    return runner.invoke(
        app,
        [
            "train",
            "--game",
            "linear_quadratic",
            "--algo",
            algo,
            "--out",
            str(tmp_path / "out"),
            *args,
        ],
    )


@pytest.mark.parametrize(
    "text, value",
    [
        ("1e-3", 1e-3),
        ("3E-4", 3e-4),
        ("1.0e+6", 1e6),
        (".5", 0.5),
        ("-2.", -2.0),
        ("2.5e-3", 2.5e-3),
        ("1e3", 1000.0),
        ("7", 7),
        ("0.1", 0.1),
    ],
)
def test_parse_assignments_reads_every_notation(text, value):
    got = parse_assignments([f"x={text}"], "--set")["x"]
    assert isinstance(got, type(value)) and got == value


def test_parse_assignments_nan_inf_are_numbers_and_bad_yaml_is_clear():
    got = parse_assignments(["a=nan", "b=inf", "c=-inf", "d=.nan"], "--set")
    assert math.isnan(got["a"]) and got["b"] == math.inf and got["c"] == -math.inf
    assert math.isnan(got["d"])
    res = runner.invoke(
        app,
        [
            "train",
            "--game",
            "linear_quadratic",
            "--algo",
            "spg",
            "--set",
            "hidden=[1,",
            "--out",
            "x",
        ],
    )
    assert res.exit_code == 2 and "not valid YAML" in res.output, res.output


@pytest.mark.parametrize(
    "args, key, value",
    [
        (["--set", "lr=1e-3"], "lr", 1e-3),
        (["--set", "lr=3E-4"], "lr", 3e-4),
        (["--set", "lr=1.0e+1"], "lr", 10.0),
        (["--set", "lr_end_fraction=.5"], "lr_end_fraction", 0.5),
        (["--set", "max_grad_norm=5e-1"], "max_grad_norm", 0.5),
        (["--set", "gamma=9.9e-1"], "gamma", 0.99),
        (["--set", "ent_coef=1e-2"], "ent_coef", 1e-2),
    ],
)
def test_cli_set_scientific_notation(tmp_path, trained, args, key, value):
    res = _train(tmp_path, *args)
    assert isinstance(res.exception, _Stop), res.output
    assert getattr(trained[0], key) == pytest.approx(value)


def test_cli_param_and_game_set_scientific_notation(tmp_path, trained):
    res = _train(
        tmp_path, "--param", "kappa=1e-1", "--set", "game.q=2E-2", "--param", "num_states=2.1e1"
    )
    assert isinstance(res.exception, _Stop), res.output
    params = trained[0].game_params
    assert params["kappa"] == pytest.approx(0.1) and params["q"] == pytest.approx(0.02)
    assert trained[0].make_game().num_states == 21


def test_config_file_scientific_notation(tmp_path, trained):
    config = tmp_path / "c.yaml"
    config.write_text("lr: 3e-4\nlr_end_fraction: .25\ngame:\n  kappa: 1E-1\n")
    res = _train(tmp_path, "--config", str(config))
    assert isinstance(res.exception, _Stop), res.output
    cfg = trained[0]
    assert cfg.lr == pytest.approx(3e-4) and cfg.lr_end_fraction == 0.25
    assert cfg.game_params["kappa"] == pytest.approx(0.1)


def test_rl_config_scientific_notation(tmp_path, trained):
    res = _train(tmp_path, "--set", "lr=2.5e-4", "--set", "ent_coef=1e-2", algo="ippo")
    assert isinstance(res.exception, _Stop), res.output
    assert trained[0].lr == pytest.approx(2.5e-4) and trained[0].ent_coef == pytest.approx(0.01)


@pytest.mark.parametrize(
    "args",
    [
        ["--set", "lr=nan"],
        ["--set", "lr=inf"],
        ["--set", "gamma=nan"],
        ["--set", "gamma=.inf"],
        ["--set", "max_grad_norm=inf"],
        ["--set", "lr_end_fraction=nan"],
        ["--set", "num_envs=inf"],
        ["--set", "num_iterations=nan"],
        ["--param", "kappa=nan"],
        ["--param", "kappa=inf"],
        ["--set", "game.sigma=-inf"],
        ["--param", "num_states=inf"],
        ["--param", "noise_probs=[nan, 1]"],
    ],
)
def test_nan_and_inf_are_not_finite_numbers(tmp_path, trained, args):
    res = _train(tmp_path, *args)
    assert res.exit_code == 2, res.output
    assert "expected a finite number" in res.output, res.output
    assert not trained


@pytest.mark.parametrize(
    "key", ["clip_eps", "tau", "log_policy_clip", "reward_scale", "gae_lambda", "vf_coef"]
)
@pytest.mark.parametrize("value", ["nan", "-inf"])
def test_rl_nan_and_inf_are_not_finite_numbers(tmp_path, trained, key, value):
    res = _train(tmp_path, "--set", f"{key}={value}", algo="ippo")
    assert res.exit_code == 2 and "expected a finite number" in res.output, res.output
    assert not trained


def test_config_file_nan(tmp_path, trained):
    config = tmp_path / "c.yaml"
    config.write_text("lr: .NaN\n")
    res = _train(tmp_path, "--config", str(config))
    assert res.exit_code == 2 and "expected a finite number" in res.output, res.output


def test_configs_and_games_reject_non_finite_directly():
    for kw in ({"lr": float("nan")}, {"gamma": float("inf")}, {"max_grad_norm": float("inf")}):
        with pytest.raises(ValueError, match="expected a finite number"):
            TrainConfig(**kw)
    with pytest.raises(ValueError, match="expected a finite number"):
        RLConfig(log_policy_clip=-math.inf)
    for name, kw in [
        ("linear_quadratic", {"kappa": math.nan}),
        ("beach_bar_1d", {"crowd_aversion": math.inf}),
        ("macro", {"crra": math.nan}),
        ("macro", {"wealth_bounds": [0, math.inf]}),
        ("beach_bar_1d", {"num_states": math.nan}),
    ]:
        with pytest.raises(ValueError, match=f"{name}: parameter .* expected a finite number"):
            mfax.make_game(name, **kw)


def test_solve_rejects_non_finite(tmp_path):
    res = runner.invoke(app, ["solve", "--game", "linear_quadratic", "--param", "kappa=nan"])
    assert res.exit_code == 2 and "finite" in res.output, res.output
    res = runner.invoke(
        app,
        [
            "solve",
            "--game",
            "linear_quadratic",
            "--gamma",
            "nan",
            "--param",
            "num_states=5",
            "--param",
            "horizon=2",
        ],
    )
    assert res.exit_code == 2 and "finite" in res.output, res.output


@pytest.mark.parametrize(
    "make",
    [
        lambda p: p.mkdir(),
        lambda p: p.write_bytes(b"\x00\x01binary\xff"),
        lambda p: p.write_bytes(b"lr: \xff\xfe"),
        lambda p: p.write_text("lr: [1,\n"),
        lambda p: p.write_text("- 1\n- 2\n"),
    ],
    ids=["directory", "binary", "not-utf8", "bad-yaml", "not-a-mapping"],
)
def test_config_file_problems_are_clear(tmp_path, trained, make):
    config = tmp_path / "config.yaml"
    make(config)
    res = _train(tmp_path, "--config", str(config))
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: config file") and str(config) in res.output, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert not trained


def test_integer_keys_accept_whole_numbers_in_any_notation(tmp_path, trained):
    config = tmp_path / "c.yaml"
    config.write_text("num_iterations: 1e3\nhidden: [3.2e1, 16.0]\n")
    res = _train(
        tmp_path,
        "--config",
        str(config),
        "--set",
        "eval_every=1E2",
        "--set",
        "num_envs=8.0",
        "--param",
        "num_states=2.1e1",
    )
    assert isinstance(res.exception, _Stop), res.output
    cfg = trained[0]
    assert (cfg.num_iterations, cfg.eval_every, cfg.hidden, cfg.num_envs) == (
        1000,
        100,
        (32, 16),
        8,
    )
    assert all(type(v) is int for v in (cfg.num_iterations, cfg.eval_every, cfg.num_envs))
    res = _train(tmp_path, "--set", "num_iterations=1.6e2")  # 160 is whole, 2.5 is not
    assert len(trained) == 2 and trained[1].num_iterations == 160
    res = _train(tmp_path, "--set", "num_iterations=2.5")
    assert res.exit_code == 2 and "'num_iterations' = 2.5" in res.output, res.output


@pytest.mark.parametrize("seed", ["-1", "4294967296", "99999999999999999999999"])
def test_seeds_are_32_bit(tmp_path, seed):
    for cmd in (
        ["solve", "--game", "linear_quadratic"],
        ["evaluate", "--agent", str(tmp_path)],
        ["train", "--game", "linear_quadratic", "--algo", "spg", "--out", str(tmp_path)],
    ):
        res = runner.invoke(app, [*cmd, "--seed", seed])
        assert res.exit_code == 2 and "--seed" in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
