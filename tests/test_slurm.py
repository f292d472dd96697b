"""The SLURM profile on a real one-node SLURM cluster started on this machine
(workflow/scripts/slurm-local.sh): a tiny grid of two pairs runs through real
`sbatch` jobs, SLURM's own job-completion log shows every train, evaluate and
report job COMPLETED, and the metrics equal a local run's.

Needs root and Debian's slurm-wlm and munge (installed with apt-get when
missing), and `pip install -e '.[slurm]'`; skipped otherwise. About 4 to 5
minutes on a 2-core CPU: `pytest -m slurm tests/test_slurm.py`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_pipeline import BIN, READMES, _env, copy_repo

from mfax import pipeline as P

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

GAME, ALGOS, SEEDS = "linear_quadratic", ["spg", "rspg"], [0, 1]
#: the grid through the params mechanism: --config overrides params/params.yaml
CONFIG = [
    "preset=tiny",
    f"grid={{games: [{GAME}], algos: [{', '.join(ALGOS)}], seeds: [{', '.join(map(str, SEEDS))}]}}",
    "evaluation={num_envs: 3, seed: 7, episodes: 2}",
]
SLURM_RULES = ("train", "evaluate", "report")  # configure and summary are local rules
#: the one place where the local cluster differs from workflow/profiles/slurm
PROFILES = ["--profile", "workflow/profiles/slurm", "--profile", "workflow/profiles/slurm-local"]


def _why_no_slurm() -> str | None:
    if not sys.platform.startswith("linux"):
        return "SLURM runs on Linux only"
    if os.geteuid() != 0:
        return "starting slurmctld and slurmd needs root"
    if not shutil.which("slurmctld") and not shutil.which("apt-get"):
        return "SLURM is not installed and there is no apt-get to install it"
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        return "the executor plugin is missing: pip install -e '.[slurm]'"
    return None


@pytest.fixture
def cluster(tmp_path):
    """A running one-node cluster; stopped (and what it made removed) afterwards, also on failure."""
    reason = _why_no_slurm()
    if reason:
        pytest.skip(reason)
    state = tmp_path / "slurm"
    script = Path(__file__).resolve().parents[1] / "workflow" / "scripts" / "slurm-local.sh"

    def run(command: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, SLURM_LOCAL_DIR=str(state))
        return subprocess.run(
            ["bash", str(script), command], env=env, capture_output=True, text=True, timeout=900
        )

    start = run("start")
    try:
        if start.returncode == 3:  # SLURM cannot be had here (the script says why)
            pytest.skip(start.stderr.strip().splitlines()[-1])
        assert start.returncode == 0, (
            f"slurm-local.sh start failed:\n{start.stdout}\n{start.stderr}"
        )
        again = run("start")  # idempotent
        assert again.returncode == 0 and "already running" in again.stderr, again.stderr
        assert os.path.realpath("/etc/slurm/slurm.conf") == os.path.realpath(
            state / "etc/slurm.conf"
        )
        status = run("status")
        assert status.returncode == 0 and "idle" in status.stdout, status.stdout + status.stderr
        yield state
    finally:
        stop = run("stop")
        assert stop.returncode == 0, f"slurm-local.sh stop failed:\n{stop.stderr}"
    if start.returncode == 0:  # everything `start` made is gone
        assert not state.exists() and not os.path.lexists("/etc/slurm/slurm.conf")
        assert run("status").returncode == 1 and run("stop").returncode == 0


def _jobcomp(path: Path) -> dict[str, dict[str, str]]:
    """SLURM's job-completion log (jobcomp/filetxt): one `Key=value ...` line per job."""
    records = {}
    for line in path.read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        records[fields["JobId"]] = fields
    return records


def _submissions(output: str) -> dict[str, tuple[str, str]]:
    """SLURM job id -> (rule, wildcards) from Snakemake's 'submitted with SLURM jobid' lines."""
    found = re.findall(
        r"submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/(\S+)/\d+\.log\)", output
    )
    return {jobid: (rule, wildcards) for jobid, rule, wildcards in found}


def _pipeline(root: Path) -> P.Pipeline:
    """The grid as Snakemake sees it with CONFIG (the same reader, the same overrides)."""
    return P.Pipeline.from_snakemake(
        root,
        (),
        {
            "preset": "tiny",
            "grid": {"games": [GAME], "algos": ALGOS, "seeds": SEEDS},
            "evaluation": {"num_envs": 3, "seed": 7, "episodes": 2},
        },
    )


def _metrics(root: Path) -> dict[str, dict]:
    """Every run's metrics.json, without wall-clock times (the one thing that may differ)."""
    out = {}
    for run in _pipeline(root).runs():
        m = json.loads((root / run.metrics).read_text())
        out[run.id] = {k: v for k, v in m.items() if not k.endswith("seconds")}
    return out


def test_tiny_grid_runs_through_slurm(cluster, tmp_path, monkeypatch):
    # both runs share one JAX compilation cache (CI shares one already): each program
    # compiles once, and the local run fills the SLURM run's waits between status checks
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "jax_cache"))
    root = copy_repo(tmp_path / "repo", extra=READMES)
    local_root = copy_repo(tmp_path / "local", extra=READMES)
    local_log = open(tmp_path / "local.log", "w+")
    local_run = subprocess.Popen(
        [str(BIN / "snakemake"), "--cores", "1", "--config", *CONFIG],
        cwd=local_root,
        env=_env(local_root),
        stdout=local_log,
        stderr=subprocess.STDOUT,
    )
    try:
        proc = subprocess.run(
            [str(BIN / "snakemake"), *PROFILES, "--config", *CONFIG],
            cwd=root,
            env=_env(root),
            capture_output=True,
            text=True,
            timeout=1200,
        )
        local_rc = local_run.wait(timeout=1200)
    finally:
        if local_run.poll() is None:
            local_run.kill()
        local_log.seek(0)
        local_output = local_log.read()
        local_log.close()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert local_rc == 0, local_output[-6000:]
    assert "Using profiles workflow/profiles/slurm and workflow/profiles/slurm-local" in output

    # Snakemake submitted every train, evaluate and report job with sbatch ...
    pipe = _pipeline(root)
    runs = pipe.runs()
    assert sorted(r.id for r in runs) == sorted(f"{GAME}/{a}" for a in ALGOS)
    submitted = _submissions(output)
    assert sorted(submitted.values()) == sorted(
        (rule, f"{r.game}_{r.name}") for rule in SLURM_RULES for r in runs
    ), output[-4000:]
    # ... and SLURM's own record has each of them, and nothing else, COMPLETED with exit 0,
    # run in this repository, with the resources of the local profile (no GPU request)
    records = _jobcomp(cluster / "log" / "jobcomp.log")
    assert set(records) == set(submitted), (records, submitted)
    local = yaml.safe_load((root / "workflow/profiles/slurm-local/config.yaml").read_text())
    for jobid, (rule, wildcards) in submitted.items():
        rec = records[jobid]
        assert rec["JobState"] == "COMPLETED" and rec["ExitCode"] == "0:0", (rule, wildcards, rec)
        assert Path(rec["WorkDir"]) == root, rec
        mem = (
            local["set-resources"].get(rule, {}).get("mem_mb", local["default-resources"]["mem_mb"])
        )
        assert f"mem={mem}M" in rec["Tres"] and "gres" not in rec["Tres"], rec

    # every output is there, each job's log too
    for path in P.expected_outputs(pipe):
        assert (root / path).exists(), path
    for r in runs:
        for stage in SLURM_RULES:
            assert (root / P.log_path(stage, r.game, r.name)).exists(), (r.id, stage)

    # the same grid run locally (no SLURM) gave the same metrics and the same weights
    assert "SLURM jobid" not in local_output and "Finished jobid" in local_output
    assert _metrics(root) == _metrics(local_root)
    for r in runs:
        for seed in SEEDS:
            weights = f"{r.model}/seed_{seed}/weights.msgpack"
            assert (root / weights).read_bytes() == (local_root / weights).read_bytes(), weights
