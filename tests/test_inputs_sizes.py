"""Game sizes beyond the machine are refused before anything is allocated (Game.check_size)."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

import mfax
import mfax.training
from mfax.cli import app
from mfax.games import check_game_size
from mfax.games.params import MAX_KERNEL_ENTRIES, MEMORY_LIMIT_ENV, estimate_bytes

runner = CliRunner()


@pytest.mark.parametrize(
    "name, kw, param",
    [
        ("linear_quadratic", {"num_states": 10**9}, "num_states"),
        ("beach_bar_1d", {"num_states": 10**9}, "num_states"),
        ("beach_bar_1d", {"num_states": 10**7}, "num_states"),
        ("linear_quadratic", {"num_states": 1000, "horizon": 10**7}, "horizon"),
        ("beach_bar_1d", {"max_action": 10**6}, "max_action"),
        ("macro", {"num_wealth": 10**9}, "num_wealth"),
        ("macro", {"num_income": 10**8}, "num_income"),
        ("macro", {"num_actions": 10**8}, "num_actions"),
    ],
)
def test_too_large_games_are_refused_fast(name, kw, param):
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"{name}: .*{param} = .* is too large.*reduce .*{param}"):
        mfax.make_game(name, **kw)
    assert time.perf_counter() - start < 2.0  # nothing was allocated


def test_published_and_test_sizes_are_allowed():
    for name in ("linear_quadratic", "beach_bar_1d", "macro"):
        game = mfax.make_game(name)
        check_game_size(game, 128, "num_envs")
        S, A, K = game.params.sizes()
        assert (S, A, K) == (game.num_states, game.num_actions, game.kernel_size)
        assert game.horizon * S * A * K < MAX_KERNEL_ENTRIES / 10


def test_memory_limit_and_num_envs(monkeypatch):
    game = mfax.make_game("linear_quadratic")
    need = estimate_bytes(game.num_states, game.num_actions, game.kernel_size, game.horizon, 64)
    assert need == 64 * estimate_bytes(
        game.num_states, game.num_actions, game.kernel_size, game.horizon
    )
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(need / 2 / 1e9))
    check_game_size(game, 1, "num_envs")
    with pytest.raises(
        ValueError,
        match=r"too large with 64 environments \(num_envs\).*"
        rf"\${MEMORY_LIMIT_ENV}.*reduce .*num_envs",
    ):
        check_game_size(game, 64, "num_envs")
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match=MEMORY_LIMIT_ENV):
        check_game_size(game, 1)


def test_cli_refuses_too_large_games(tmp_path, monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "16")  # the same on every machine
    called = []
    monkeypatch.setattr(mfax.training, "run_training", lambda *a, **k: called.append(a))
    for args in (
        ["--param", "num_states=1e9"],
        ["--set", "game.num_states=1e7"],
        ["--param", "num_states=200000"],
    ):  # fits once, not 128 environments
        res = runner.invoke(
            app,
            [
                "train",
                "--game",
                "beach_bar_1d",
                "--algo",
                "spg",
                *args,
                "--out",
                str(tmp_path / "out"),
            ],
        )
        assert res.exit_code == 2, res.output
        assert "num_states" in res.output and "too large" in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "num_envs" in res.output
    assert called == []
    res = runner.invoke(app, ["solve", "--game", "linear_quadratic", "--param", "num_states=1e9"])
    assert res.exit_code == 2 and "too large" in res.output, res.output
    res = runner.invoke(
        app,
        ["solve", "--game", "beach_bar_1d", "--param", "num_states=200000", "--num-envs", "1000"],
    )
    assert res.exit_code == 2 and "num_envs" in res.output, res.output
