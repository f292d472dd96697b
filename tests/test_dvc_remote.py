"""DVC remotes, round-tripped: a tiny pipeline run is committed and pushed to a
local-directory remote, a fresh `git clone` elsewhere pulls it, and then nothing
is left to do (Snakemake and DVC agree) and the pulled agent evaluates to the
metrics the pipeline recorded (docs/PIPELINE.md, "Remote storage").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_pipeline import BIN, READMES, copy_repo, git_dvc_init, job_counts, sh

# a tiny pipeline run, pushed, cloned and pulled: ~50 s on the 2-core CI machine; CI runs it
# with -m slow
pytestmark = pytest.mark.slow

GAME, ALGO, SEED = "linear_quadratic", "spg", 0
EVAL = {"num_envs": 3, "seed": 7, "episodes": 2}


def _one_pair(params: dict) -> None:
    """The tiny preset, one pair and one seed: the whole pipeline in well under a minute."""
    params["preset"] = "tiny"
    params["grid"] = {"games": [GAME], "algos": [ALGO], "seeds": [SEED]}
    params["evaluation"] = dict(EVAL)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """(repository, remote): a tiny run, committed to git + DVC and pushed to the remote."""
    base = tmp_path_factory.mktemp("dvc-remote")
    root = copy_repo(base / "repo", _one_pair, READMES)
    sh(root, str(BIN / "mfax"), "dvc-yaml")
    git_dvc_init(root)
    sh(root, str(BIN / "snakemake"), "--cores", "2")
    remote = base / "store"
    dvc = str(BIN / "dvc")
    sh(root, dvc, "commit", "-f", "-q")  # adopt Snakemake's outputs into dvc.lock
    sh(root, dvc, "remote", "add", "-d", "store", str(remote))
    sh(root, dvc, "push", "-q")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "results")
    return root, remote


def test_push_clone_pull_round_trip(pushed, tmp_path):
    root, remote = pushed
    dvc = str(BIN / "dvc")
    run = f"{GAME}/{ALGO}"
    assert any(remote.rglob("*")), "dvc push stored nothing in the remote"
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(root), str(clone))
    # git brings the code, params, dvc.lock and the small metrics; not the models
    assert (clone / "dvc.lock").exists() and (clone / f"reports/{run}/metrics.json").exists()
    assert not (clone / f"models/{run}").exists()
    assert not (clone / f"data/{run}/trajectory.nc").exists()

    sh(clone, dvc, "pull", "-q")
    for rel in (
        f"models/{run}/seeds.json",
        f"models/{run}/seed_{SEED}/weights.msgpack",
        f"data/{run}/config.yaml",
        f"data/{run}/trajectory.nc",
        f"reports/{run}/report.html",
        "reports/summary.md",
    ):
        assert (clone / rel).read_bytes() == (root / rel).read_bytes(), rel

    # both records came with the clone: DVC's (dvc.lock) and Snakemake's (.snakemake/metadata,
    # git-tracked: each output's params, code and input checksums), so the pulled files'
    # arbitrary modification times rerun nothing
    assert (clone / ".snakemake" / "metadata").is_dir()
    # the worst order a pull can leave: every upstream file newer than every output after it
    stages = ["reports", "data", "models"]  # summary/report/evaluate outputs, then training's
    for age, top in enumerate(stages):
        for path in (clone / top).rglob("*"):
            os.utime(path, (time.time() + 100 * age, time.time() + 100 * age))
    status = sh(clone, dvc, "status")
    assert "Data and pipelines are up to date." in status.stdout, status.stdout
    plan = sh(clone, str(BIN / "snakemake"), "-n")
    assert job_counts(plan.stdout) == {}, plan.stdout[-2000:]
    assert "Nothing to be done" in plan.stdout + plan.stderr
    # and the record is a real one: a parameter change reruns the pair
    params = clone / "params" / "params.yaml"
    original = params.read_text()
    params.write_text(original.replace("  spg: {}", "  spg: {lr: 0.05}", 1))
    assert job_counts(sh(clone, str(BIN / "snakemake"), "-n").stdout) == {
        "configure": 1,
        "train": 1,
        "evaluate": 1,
        "report": 1,
        "summary": 1,
        "all": 1,
    }
    params.write_text(original)

    # the pulled agent evaluates, with the pipeline's evaluation settings, to the recorded metrics
    out = tmp_path / "eval.json"
    sh(
        clone,
        str(BIN / "mfax"),
        "evaluate",
        "--agent",
        f"models/{run}/seed_{SEED}",
        "--num-envs",
        str(EVAL["num_envs"]),
        "--seed",
        str(EVAL["seed"]),
        "--json",
        str(out),
    )
    got = json.loads(out.read_text())
    recorded = json.loads((root / f"reports/{run}/metrics.json").read_text())["per_seed"][str(SEED)]
    assert got["game"] == GAME and got["algorithm"] == ALGO
    for key in ("exploitability", "policy_return", "best_response_return"):
        assert got[key] == pytest.approx(recorded[key], rel=1e-6), key
    assert (
        Path(clone / f"reports/{run}/metrics.json").read_text()
        == (root / f"reports/{run}/metrics.json").read_text()
    )
