"""Output locations are checked before any work starts (mfax.outputs and every command)."""

from __future__ import annotations

import os
import sys

import jax
import pytest
from typer.testing import CliRunner

import mfax.evaluation
import mfax.rl
import mfax.training
from mfax.agents import save_agent
from mfax.cli import app
from mfax.networks import NetworkConfig, init_params
from mfax.outputs import OutputLocationError, check_output_location

runner = CliRunner()


@pytest.fixture()
def calls(monkeypatch):
    """Stub out training and evaluation; the list records every call (none expected)."""
    seen = []

    def fake(*args, **kw):
        seen.append(args)
        raise AssertionError("work started although an output location is unusable")

    monkeypatch.setattr(mfax.training, "run_training", fake)
    monkeypatch.setattr(mfax.rl, "run_training", fake)
    monkeypatch.setattr(mfax.evaluation, "evaluate_policy", fake)
    return seen


def test_check_output_location(tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    d = tmp_path / "dir"
    d.mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    # usable: existing or creatable folders and files
    for path, kind in [
        (d, "dir"),
        (tmp_path / "new" / "deeper", "dir"),
        (f, "file"),
        (d / "m.json", "file"),
        (tmp_path / "a" / "b" / "m.json", "file"),
    ]:
        assert check_output_location(path, kind, "--out") == path
    # nothing was created by the checks
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    for path, kind, match in [
        (f, "dir", "is an existing file, not a directory"),
        (d, "file", "is an existing directory, not a file"),
        (f / "sub", "dir", "'.*file.txt' is a file, not a folder"),
        (f / "sub" / "m.json", "file", "'.*file.txt' is a file, not a folder"),
        ("", "dir", "empty path"),
    ]:
        with pytest.raises(OutputLocationError, match=match):
            check_output_location(path, kind, "--out")
    with pytest.raises(ValueError, match="--json"):
        check_output_location(d, "file", "--json")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")
def test_unwritable_folder_is_refused():
    with pytest.raises(OutputLocationError, match="not writable"):
        check_output_location("/proc/mfax-output-test/agent", "dir", "--out")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputLocationError, match="not writable"):
            check_output_location(ro / "agent", "dir", "--out")
    finally:
        ro.chmod(0o755)


def _bad_outs(tmp_path):
    f = tmp_path / "existing.txt"
    f.write_text("keep me")
    return f, [(f, "existing file"), (f / "agent", "is a file, not a folder")]


@pytest.mark.parametrize("algo", ["spg", "ippo"])
def test_train_out_checked_before_training(tmp_path, calls, algo):
    f, cases = _bad_outs(tmp_path)
    if sys.platform.startswith("linux"):
        cases.append(("/proc/mfax-output-test", "not writable"))
    for out, match in cases:
        # a long run: the error must come before any training (the stub would record it)
        res = runner.invoke(
            app,
            [
                "train",
                "--game",
                "linear_quadratic",
                "--algo",
                algo,
                "--set",
                "num_iterations=1000000",
                "--set",
                "eval_every=1",
                "--out",
                str(out),
            ],
        )
        assert res.exit_code == 2, res.output
        assert "--out" in res.output and match in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert calls == []
    assert f.read_text() == "keep me"


@pytest.fixture()
def agent_dir(tmp_path):
    game = mfax.make_game("linear_quadratic", num_states=11, horizon=4)
    cfg = NetworkConfig(hidden=(8,), embed_dim=4)
    return save_agent(
        tmp_path / "agent",
        network=cfg,
        params=init_params(cfg, game, jax.random.key(0)),
        game=game,
        algorithm="spg",
    )


def test_evaluate_json_checked_before_evaluating(tmp_path, agent_dir, calls):
    f = tmp_path / "existing.txt"
    f.write_text("keep me")
    for out, match in [(tmp_path, "existing directory"), (f / "m.json", "is a file, not a folder")]:
        res = runner.invoke(app, ["evaluate", "--agent", str(agent_dir), "--json", str(out)])
        assert res.exit_code == 2, res.output
        assert "--json" in res.output and match in res.output, res.output
        assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert calls == []
    # an output check does not depend on the agent: it comes first
    res = runner.invoke(
        app, ["evaluate", "--agent", str(tmp_path / "missing"), "--json", str(tmp_path)]
    )
    assert res.exit_code == 2 and "--json" in res.output, res.output


def test_evaluate_json_good_location_written(tmp_path, agent_dir):
    out = tmp_path / "reports" / "deep" / "metrics.json"
    res = runner.invoke(
        app, ["evaluate", "--agent", str(agent_dir), "--num-envs", "2", "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert out.exists()


def test_agent_folder_must_be_new_empty_or_an_agent(tmp_path, agent_dir):
    (tmp_path / "empty").mkdir()
    check_output_location(tmp_path / "empty", "agent", "--out")
    check_output_location(agent_dir, "agent", "--out")  # retraining over an agent
    check_output_location(tmp_path / "new" / "agent", "agent", "--out")
    other = tmp_path / "reports"
    other.mkdir()
    for name in ("curve.csv", "metrics.json", "notes.txt"):
        (other / name).write_text("keep me")
    with pytest.raises(
        OutputLocationError,
        match=r"--out '.*reports' is an existing folder that "
        r"is not an mfax agent \(it holds 3 other",
    ):
        check_output_location(other, "agent", "--out")


def test_train_out_never_overwrites_other_files(tmp_path, calls, monkeypatch):
    other = tmp_path / "reports"
    other.mkdir()
    (other / "curve.csv").write_text("keep me")
    monkeypatch.chdir(tmp_path)
    for out in (str(other), "."):
        res = runner.invoke(
            app, ["train", "--game", "linear_quadratic", "--algo", "spg", "--out", out]
        )
        assert res.exit_code == 2 and "not an mfax agent" in res.output, res.output
    assert calls == [] and (other / "curve.csv").read_text() == "keep me"
