"""The pipeline: params/ as the one source of truth, Snakemake and DVC in agreement,
reports, and an end-to-end run of the tiny preset in a temporary git + DVC repository.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr
import yaml

import mfax
from mfax import pipeline as P

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SOURCES = ["workflow", "params", "mfax", "pyproject.toml", ".gitignore"]
#: committed into the output folders (the end-to-end repository has them too)
READMES = ["data/README.md", "models/README.md", "reports/README.md"]


def _env(root: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(root)  # the copy's mfax, not the installed one
    env.pop("DVC_NO_ANALYTICS", None)
    env["DVC_NO_ANALYTICS"] = "1"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.com"
    return env


def sh(root: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=root, env=_env(root), capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def copy_repo(dest: Path, params_edit=None, extra=()) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in [*SOURCES, *extra]:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if params_edit is not None:
        path = dest / "params" / "params.yaml"
        data = yaml.safe_load(path.read_text())
        params_edit(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def git_dvc_init(root: Path) -> None:
    sh(root, "git", "init", "-q")
    sh(root, str(BIN / "dvc"), "init", "-q")
    with open(root / ".dvcignore", "a") as f:
        f.write("__pycache__/\n")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "init")


def job_counts(dry_run_output: str) -> dict[str, int]:
    """The 'Job stats' table of `snakemake -n`."""
    counts: dict[str, int] = {}
    lines = dry_run_output.splitlines()
    if "Job stats:" not in lines:
        return counts
    for line in lines[lines.index("Job stats:") + 3 :]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    counts.pop("total", None)
    return counts


def snakemake_jobs(root: Path, *args: str) -> dict[str, int]:
    return job_counts(sh(root, str(BIN / "snakemake"), "-n", *args).stdout)


# ------------------------------------------------------------------ params / grid
def test_repo_params_resolve():
    pipe = P.Pipeline.load(root=REPO)
    assert pipe.params["preset"] == "quick"
    runs = pipe.runs()
    assert {(r.game, r.algo) for r in runs} == {(g, a) for g in pipe.games for a in pipe.algos}
    for run in runs:
        cfg = pipe.train_config(run)
        assert cfg["seeds"] == pipe.seeds
        pipe.check_game(run)
        from mfax.algorithms import get_algorithm

        mapping = {k: v for k, v in cfg.items() if k != "seeds"}
        config_class = get_algorithm(run.algo).config_class
        config_class.from_mapping(mapping, game=run.game, algo=run.algo)  # valid trainer config
    for preset in ("quick", "paper", "tiny"):
        p = P.Pipeline.load(root=REPO, overrides={"preset": preset})
        for run in p.runs():
            p.check_game(run)


def _write_params(tmp_path, params, presets=None) -> Path:
    (tmp_path / "params" / "presets").mkdir(parents=True)
    for name, data in (presets or {"base": {}}).items():
        (tmp_path / "params" / "presets" / f"{name}.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "params" / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_layering_sweep_and_names(tmp_path):
    preset = {
        "defaults": {"lr": 1.0, "num_iterations": 10, "game": {"horizon": 7}},
        "algos": {"rspg": {"lr": 2.0}},
        "games": {"beach_bar_1d": {"num_envs": 3, "game": {"num_states": 21}}},
        "pairs": {"beach_bar_1d": {"rspg": {"eval_every": 5}}},
    }
    params = {
        "preset": "base",
        "grid": {
            "games": ["linear_quadratic", "beach_bar_1d"],
            "algos": ["spg", "rspg"],
            "seeds": [4, 5],
        },
        "sweep": {"lr": [0.1, 0.01], "hidden": [[8], [16, 16]]},
        "defaults": {"num_iterations": 20},
        "games": {"beach_bar_1d": {"game": {"horizon": 9}}},
        "pairs": {"beach_bar_1d": {"rspg": {"num_envs": 6}}},
    }
    root = _write_params(tmp_path, params, {"base": preset})
    pipe = P.Pipeline.load(root=root)
    runs = pipe.runs()
    assert len(runs) == 2 * 2 * 4
    names = {r.name for r in runs}
    assert "rspg-hidden=16x16-lr=0.01" in names and "spg-hidden=8-lr=0.1" in names
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", r.key) for r in runs)  # valid DVC stage keys
    assert len({r.key for r in runs}) == len(runs)
    run = pipe.run("beach_bar_1d", "rspg-hidden=8-lr=0.1")
    cfg = pipe.train_config(run)
    assert cfg == {
        "lr": 0.1,
        "hidden": [8],
        "num_iterations": 20,
        "num_envs": 6,
        "eval_every": 5,
        "game": {"horizon": 9, "num_states": 21},
        "seeds": [4, 5],
    }
    cfg = pipe.train_config(pipe.run("linear_quadratic", "spg-hidden=8-lr=0.01"))
    assert cfg["game"] == {"horizon": 7} and cfg["lr"] == 0.01
    assert P.expected_outputs(pipe) >= {
        "reports/summary.md",
        run.model,
        run.trajectory,
        run.metrics,
        run.report,
    }


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda p: p.update(bogus=1), "top-level key 'bogus'"),
        (lambda p: p.update(preset="nope"), "preset = 'nope'.*base"),
        (lambda p: p["grid"].update(games=["chess"]), "unknown game 'chess'"),
        (lambda p: p["grid"].update(algos=["spg", "spg"]), "grid.algos"),
        (lambda p: p["grid"].update(seeds=[0, -1]), "grid.seeds"),
        (lambda p: p.update(sweep={"lr": 0.1}), "sweep.lr"),
        (lambda p: p.update(evaluation={"num_envs": 0}), "evaluation.num_envs"),
        (lambda p: p.update(evaluation={"speed": 1}), "evaluation.speed"),
    ],
)
def test_params_errors_name_the_field(tmp_path, edit, match):
    params = {"preset": "base", "grid": {"games": ["linear_quadratic"], "algos": ["spg"]}}
    edit(params)
    root = _write_params(tmp_path, params)
    with pytest.raises(P.ParamsError, match=match):
        P.Pipeline.load(root=root)


def test_bad_game_parameter_is_caught_when_loading(tmp_path):
    params = {
        "preset": "base",
        "grid": {"games": ["linear_quadratic"], "algos": ["spg"]},
        "games": {"linear_quadratic": {"game": {"horizon": -1}}},
    }
    with pytest.raises(
        P.ParamsError, match=r"params/params.yaml: games\.linear_quadratic\.game\.horizon: .*-1"
    ):
        P.Pipeline.load(root=_write_params(tmp_path, params))


# ------------------------------------------------------- Snakemake <-> DVC agreement
def test_dvc_yaml_is_up_to_date():
    pipe = P.Pipeline.load(root=REPO)
    assert (REPO / "dvc.yaml").read_text() == P.dvc_yaml(pipe), (
        "dvc.yaml is out of date with params/: run `mfax dvc-yaml`"
    )
    for stage, deps in P.CODE_DEPS.items():
        for dep in deps:
            assert (REPO / dep).exists(), f"{stage} depends on missing {dep}"


#: what each stage's command imports (mfax/cli_pipeline.py; the learners through the registry)
STAGE_IMPORTS = {
    "train": "import mfax.multiseed, mfax.outputs, mfax.io, mfax.pipeline.staging, "
    "mfax.pipeline.timings; import mfax.algorithms as a; "
    "[a.get_algorithm(n).make_train for n in a.list_algorithms()]",
    "evaluate": "import mfax.agents, mfax.io, mfax.evaluation, mfax.multiseed, mfax.policies, "
    "mfax.pipeline.netcdf, mfax.pipeline.evaluate, mfax.pipeline.staging, "
    "mfax.pipeline.timings",
    "report": "import mfax.pipeline.reports, mfax.pipeline.netcdf, mfax.pipeline.timings",
    "summary": "import mfax.pipeline.reports, mfax.pipeline.timings",
}


def _imported_files(statement: str) -> set[str]:
    code = (
        f"import sys; {statement}; print('\\n'.join(m.__file__ for n, m in "
        "list(sys.modules.items())\n"
        "    if n.split('.')[0] == 'mfax' and getattr(m, '__file__', None)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        check=True,
    ).stdout
    return {str(Path(f).resolve().relative_to(REPO)) for f in out.split()}


def test_code_deps_cover_the_code_each_stage_imports():
    """CODE_DEPS lists every mfax module a stage imports beyond the pipeline package itself
    (whose plumbing, e.g. the dvc.yaml generator, reruns no job), and no stage but configure
    depends on that plumbing."""
    plumbing = {
        "mfax/pipeline/params.py",
        "mfax/pipeline/runs.py",
        "mfax/pipeline/code.py",
        "mfax/pipeline/dvc.py",
        "mfax/pipeline/timings.py",
    }
    for stage, deps in P.CODE_DEPS.items():
        covered = {str(f.relative_to(REPO)) for f in P.code_files(REPO, deps)}
        if stage != "configure":
            assert not covered & plumbing, (stage, covered & plumbing)
    package = _imported_files("import mfax.pipeline")
    assert "mfax/pipeline/dvc.py" in package
    for stage, statement in STAGE_IMPORTS.items():
        covered = {str(f.relative_to(REPO)) for f in P.code_files(REPO, P.CODE_DEPS[stage])}
        missing = _imported_files(statement) - package - plumbing - covered
        assert not missing, f"the {stage} stage runs {sorted(missing)}: add them to CODE_DEPS"


def test_snakemake_and_dvc_name_the_same_outputs(tmp_path):
    root = copy_repo(tmp_path / "repo")
    shutil.copy2(REPO / "dvc.yaml", root / "dvc.yaml")
    git_dvc_init(root)
    summary = sh(root, str(BIN / "snakemake"), "--summary").stdout.splitlines()
    start = next(i for i, line in enumerate(summary) if line.startswith("output_file"))
    smk = {line.split("\t")[0] for line in summary[start + 1 :] if "\t" in line}

    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        dvc = {str(Path(o.fs_path).relative_to(root)) for s in repo.index.stages for o in s.outs}

    pipe = P.Pipeline.load(root=root)
    assert dvc == P.expected_outputs(pipe)

    def owner(path: str) -> str:
        hits = [o for o in dvc if path == o or path.startswith(o + "/")]
        assert len(hits) == 1, f"Snakemake output {path} is in DVC outputs {hits}"
        return hits[0]

    # every Snakemake output is a DVC output or a file inside one (models/<game>/<run>/...),
    # and every DVC output is made by Snakemake
    assert {owner(p) for p in smk} == dvc


def test_paths_are_defined_once():
    """The rules take every path from mfax.pipeline.runs (no path literals in the .smk files);
    the model folder's index is the one mfax.multiseed writes."""
    from mfax.multiseed import SEEDS_FILE

    assert P.SEEDS_FILE == SEEDS_FILE
    for f in [REPO / "workflow" / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        code = "\n".join(
            line for line in f.read_text().splitlines() if not line.lstrip().startswith("#")
        )
        for literal in ('"data/', '"models/', '"reports/', '"logs/', "{game}/{run}"):
            assert literal not in code, (
                f"{f.name} spells out a path ({literal}): use mfax.pipeline.runs"
            )
    run = P.Run("macro", "spg", (("lr", 0.001),))
    assert (
        run.metrics
        == P.path("metrics", "macro", "spg-lr=0.001")
        == "reports/macro/spg-lr=0.001/metrics.json"
    )
    assert P.log_path("train", "macro", run.name) == "logs/macro/spg-lr=0.001/train.log"


def test_output_folders_have_a_readme_in_git():
    """data/, models/ and reports/ hold a committed README; their outputs and logs/ stay out
    of git."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0

    for readme in READMES:
        assert (REPO / readme).exists() and not ignored(readme), readme
    run = P.Run("macro", "spg")
    for path in (
        run.config,
        run.trajectory,
        run.model,
        run.report,
        run.figures + "/x.png",
        P.SUMMARY_OUTPUTS[0],
        P.log_path("train", "macro", "spg"),
        P.SUMMARY_LOG,
    ):
        assert ignored(path), path
    assert not ignored(run.metrics) and not ignored(run.curve)


def test_dry_run_plans_the_whole_grid():
    counts = snakemake_jobs(REPO)
    n = len(P.Pipeline.load(root=REPO).runs())
    assert counts.get("train") == n and counts.get("evaluate") == n and counts.get("report") == n
    assert counts.get("summary") == 1


def test_jobs_compute_on_their_snakemake_threads():
    # JAX's thread pool of each train / evaluate job is its Snakemake threads (JOB_THREADS,
    # or --set-threads), and dvc.yaml's commands use the same number: one set of bits
    def commands(*args):
        out = sh(REPO, str(BIN / "snakemake"), "-n", "-p", *args).stdout
        lines = [line.split("Shell command: ", 1)[-1] for line in out.splitlines()]
        return [line for line in lines if line.startswith("mfax ")]

    n = len(P.Pipeline.load(root=REPO).runs())
    default = commands()
    for job in ("train-seeds", "evaluate-run"):
        assert sum(f"mfax --threads {P.JOB_THREADS} {job} " in c for c in default) == n
    more = commands("--set-threads", "train=2")
    assert sum("mfax --threads 2 train-seeds " in c for c in more) == n
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for stage, job in (("train", "train-seeds"), ("evaluate", "evaluate-run")):
        assert stages[stage]["do"]["cmd"].startswith(f"mfax --threads {P.JOB_THREADS} {job} ")


# ---------------------------------------------------------------------- reports
def _fake_run(root: Path, game, run: str, scale: float) -> Path:
    """metrics.json, curve.csv and trajectory.nc of a uniform policy (no training)."""
    from mfax.agents import atomic_write, curve_csv
    from mfax.pipeline.netcdf import trajectory_dataset, write_netcdf

    r = mfax.evaluate_policy(game, mfax.uniform_policy(game), jax.random.key(0), num_envs=2)
    base = root / "reports" / game.name / run
    e = float(r.exploitability) * scale
    metrics = {
        "exploitability": e,
        "exploitability_std": 0.1 * e,
        "policy_return": -1.0,
        "best_response_return": -0.5,
        "train_seconds": 2.0,
        "iterations": 4,
        "num_seeds": 2,
        "uniform_exploitability": float(r.exploitability),
        "initial_exploitability": 2 * e,
        "per_seed": {"0": {"exploitability": e}, "1": {"exploitability": e}},
    }
    atomic_write(base / "metrics.json", json.dumps(metrics))
    rows = [
        {
            "iteration": i,
            "seconds": 0.5 * i,
            "exploitability": e * (3 - i) / 3,
            "exploitability_min": 0.9 * e,
            "exploitability_max": 1.1 * e,
        }
        for i in range(3)
    ]
    atomic_write(base / "curve.csv", curve_csv(rows, list(rows[0])))
    write_netcdf(
        trajectory_dataset(game, r, attrs={"algorithm": run.split("-")[0]}),
        root / "data" / game.name / run / "trajectory.nc",
    )
    return base


def test_report_and_summary(tmp_path):
    from mfax.pipeline.reports import write_report, write_summary

    lq = mfax.make_game("linear_quadratic", num_states=9, horizon=5)
    macro = mfax.make_game("macro", num_wealth=6, num_income=3, num_actions=4, horizon=4)
    metrics = []
    for game, run, scale in (
        (lq, "spg-lr=0.1", 0.5),
        (lq, "spg-lr=0.01", 0.2),
        (macro, "rspg-lr=0.1", 0.7),
    ):
        base = _fake_run(tmp_path, game, run, scale)
        out = write_report(
            base / "metrics.json",
            base / "curve.csv",
            tmp_path / "data" / game.name / run / "trajectory.nc",
            base / "report.html",
        )
        html = out.read_text()
        for fig in ("exploitability", "mean_field", "policy", "values"):
            assert f"figures/{fig}.png" in html
            assert (base / "figures" / f"{fig}.png").stat().st_size > 1000
        metrics.append(base / "metrics.json")
    # the jobs' timings of two runs (the third wrote none: its cells stay empty)
    for run, scale in (("spg-lr=0.1", 1.0), ("spg-lr=0.01", 2.0)):
        for stage, total, compile_ in (
            ("train", 10.0, 4.0),
            ("evaluate", 3.0, 1.5),
            ("report", 2.0, None),
        ):
            t = {"stage": stage, "total": scale * total}
            if compile_ is not None:
                t["compile"] = scale * compile_
            path = tmp_path / P.timings_path(stage, "linear_quadratic", run)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(t))
    md, csv_path, png = write_summary(metrics, tmp_path / "reports" / "summary.md")
    text = md.read_text()
    assert png.stat().st_size > 1000 and "summary.png" in text
    rows = list(__import__("csv").DictReader(open(csv_path)))
    assert len(rows) == 3
    timed = {r["setting"]: r for r in rows if r["game"] == "linear_quadratic"}
    assert float(timed["lr=0.01"]["train_job_seconds"]) == 20.0
    assert float(timed["lr=0.01"]["evaluate_compile_seconds"]) == 3.0
    assert float(timed["lr=0.1"]["report_job_seconds"]) == 2.0
    assert timed["lr=0.1"]["report_compile_seconds"] == ""
    assert rows[2]["game"] == "macro" and rows[2]["train_job_seconds"] == ""
    # per run: train, evaluate and report jobs, training seconds, all jobs; then the totals
    assert "| linear_quadratic | spg-lr=0.01 | 20.0 (8.0) | 6.0 (3.0) | 4.0 | 2 | 30.0 |" in text
    assert "| **all runs** |  | 30.0 (12.0) | 9.0 (4.5) | 6.0 | 6 | 45.0 |" in text
    best = {(r["game"], r["algorithm"]): r["setting"] for r in rows if r["best_setting"] == "True"}
    assert best == {("linear_quadratic", "spg"): "lr=0.01", ("macro", "rspg"): "lr=0.1"}
    assert "Best setting" in text


def test_corrupted_model_gives_a_clear_error(tmp_path):
    from mfax.multiseed import save_seeds
    from mfax.training import TrainConfig, TrainResult, make_train

    cfg = TrainConfig.from_mapping(
        {
            "num_iterations": 2,
            "eval_every": 1,
            "num_envs": 1,
            "hidden": [4],
            "embed_dim": 2,
            "game": {"num_states": 5, "horizon": 3},
        },
        game="linear_quadratic",
        algo="spg",
    )
    trainer = make_train(cfg)
    state = trainer.init(jax.random.key(0))
    row = {
        "iteration": 0,
        "seconds": 0.0,
        "exploitability": 1.0,
        "policy_return": 0.0,
        "best_response_return": 1.0,
        "exploitability_undiscounted": 1.0,
    }
    save_seeds(
        [TrainResult(trainer, 0, state.params, [row], np.zeros(0), 0.0, 0.0, 0.0)],
        tmp_path / "model",
    )
    weights = tmp_path / "model" / "seed_0" / "weights.msgpack"
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")
    proc = subprocess.run(
        [
            str(BIN / "mfax"),
            "evaluate-run",
            "--agent",
            str(tmp_path / "model"),
            "--num-envs",
            "1",
            "--metrics",
            str(tmp_path / "m.json"),
            "--curve",
            str(tmp_path / "c.csv"),
            "--trajectory",
            str(tmp_path / "t.nc"),
        ],
        capture_output=True,
        text=True,
        env=_env(REPO),
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "error:" in proc.stderr and "weights.msgpack" in proc.stderr
    assert not (tmp_path / "m.json").exists()


# ------------------------------------------------------------------- end to end
def _tiny(params: dict) -> None:
    params["preset"] = "tiny"
    params["grid"] = {"games": ["linear_quadratic"], "algos": ["spg", "rspg"], "seeds": [0, 1]}
    params["evaluation"] = {"num_envs": 3, "seed": 7, "episodes": 2}


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory):
    """A temporary git + DVC repository with the tiny preset, run once by Snakemake."""
    root = copy_repo(tmp_path_factory.mktemp("e2e") / "repo", _tiny, READMES)
    sh(root, str(BIN / "mfax"), "dvc-yaml")
    git_dvc_init(root)
    sh(root, str(BIN / "snakemake"), "--cores", "2")
    return root


def test_snakemake_builds_every_output(tiny_repo):
    pipe = P.Pipeline.load(root=tiny_repo)
    for path in P.expected_outputs(pipe):
        assert (tiny_repo / path).exists(), path
    for run in pipe.runs():
        for seed in pipe.seeds:
            agent = mfax.load_agent(tiny_repo / run.model / f"seed_{seed}")
            assert agent.description["algorithm"] == run.algo and agent.description["seed"] == seed
        m = json.loads((tiny_repo / run.metrics).read_text())
        for key in (
            "exploitability",
            "exploitability_std",
            "policy_return",
            "best_response_return",
            "train_seconds",
            "iterations",
            "uniform_exploitability",
            "initial_exploitability",
        ):
            assert isinstance(m[key], (int, float)), key
        assert m["num_seeds"] == 2 and set(m["per_seed"]) == {"0", "1"}
        with xr.open_dataset(tiny_repo / run.trajectory) as ds:
            assert set(P_DIMS) <= set(ds.dims) and ds.sizes["episode"] == 2
            assert "x" in ds.coords and ds.attrs["algorithm"] == run.algo
            assert ds.attrs["game"] == "linear_quadratic" and ds.attrs["seed"] == 0
            np.testing.assert_allclose(ds["mu"].sum("state"), 1.0, atol=1e-5)
            assert json.loads(ds.attrs["game_parameters"])["num_states"] == 9
        assert "<img" in (tiny_repo / run.report).read_text()
    assert "linear_quadratic" in (tiny_repo / "reports/summary.md").read_text()
    for run in pipe.runs():  # each job's output went to its log
        for stage in ("train", "evaluate", "report"):
            assert (tiny_repo / P.log_path(stage, run.game, run.name)).exists(), (run.id, stage)
    assert "wrote" in (tiny_repo / P.SUMMARY_LOG).read_text()


P_DIMS = ("episode", "time", "state", "action")


def test_snakemake_reruns_on_content_not_mtimes(tiny_repo):
    root = tiny_repo
    assert snakemake_jobs(root) == {}
    # a DVC checkout rewrites every output with new mtimes: nothing may rerun
    sh(root, str(BIN / "dvc"), "commit", "-f", "-q")
    shutil.rmtree(root / "models/linear_quadratic/spg")
    (root / "data/linear_quadratic/spg/trajectory.nc").unlink()
    (root / "reports/linear_quadratic/rspg/report.html").unlink()
    sh(root, str(BIN / "dvc"), "checkout", "-q")
    for p in [
        *root.glob("data/*/*/config.yaml"),
        root / "params/params.yaml",
        *root.glob("mfax/**/*.py"),
    ]:
        os.utime(p)
    assert snakemake_jobs(root) == {}, "a dvc checkout must not trigger retraining"

    # report code changed: reports and the summary only
    reports = root / "mfax" / "pipeline" / "reports.py"
    original = reports.read_text()
    reports.write_text(original + "\n# restyled\n")
    assert snakemake_jobs(root) == {"report": 2, "summary": 1, "all": 1}
    reports.write_text(original)

    # one pair's parameters changed: that pair only
    params = root / "params" / "params.yaml"
    text = params.read_text()
    data = yaml.safe_load(text)
    data["algos"]["spg"] = {"lr": 0.05}
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    assert snakemake_jobs(root) == {
        "configure": 1,
        "train": 1,
        "evaluate": 1,
        "report": 1,
        "summary": 1,
        "all": 1,
    }
    params.write_text(text)
    assert snakemake_jobs(root) == {}


@pytest.mark.slow  # ~17 s; CI runs it
def test_profile_checksums_large_inputs_and_resumes_interrupted_runs(tiny_repo):
    """The workflow profile is in force for a plain `snakemake`: inputs over Snakemake's
    default max-checksum-file-size (1 MB) are compared by content, and a run that was
    interrupted (a job marked incomplete, its outputs written atomically) resumes."""
    from mfax.pipeline.netcdf import read_netcdf, write_netcdf

    root = tiny_repo
    assert snakemake_jobs(root) == {}
    # an input over 1 MB: spg's trajectory (read by its report), with incompressible padding
    traj = root / "data/linear_quadratic/spg/trajectory.nc"
    ds = read_netcdf(traj)
    ds["padding"] = ("padding", np.random.default_rng(0).random(200_000))
    write_netcdf(ds, traj)
    assert traj.stat().st_size > 1_200_000
    # an interrupted run: Snakemake was killed while rspg's report job was running
    key = "reports/linear_quadratic/rspg/report.html"
    marker = root / ".snakemake" / "incomplete" / base64.urlsafe_b64encode(key.encode()).decode()
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('{"external_jobid": null}')
    out = sh(root, str(BIN / "snakemake"), "-n")
    assert "Using workflow specific profile workflow/profiles/default" in out.stderr
    # the summary shows every job's timings, so it follows the rerun reports
    assert job_counts(out.stdout) == {"report": 2, "summary": 1, "all": 1}
    sh(root, str(BIN / "snakemake"), "--cores", "2")
    # what a `dvc checkout` does: every file rewritten, same content
    sh(root, "find", "data", "models", "reports", "-type", "f", "-exec", "touch", "{}", "+")
    assert snakemake_jobs(root) == {}


@pytest.mark.slow  # ~25 s; CI runs it
def test_corrupted_model_fails_the_pipeline_and_leaves_no_stale_report(tiny_repo):
    root = tiny_repo
    model = root / "models/linear_quadratic/spg"
    backup = root.parent / "spg-model-backup"
    shutil.copytree(model, backup)
    weights = model / "seed_0" / "weights.msgpack"
    weights.write_bytes(weights.read_bytes()[:-7] + b"garbage")
    proc = sh(root, str(BIN / "snakemake"), "--cores", "2", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "weights.msgpack" in output and "retrain it: delete models/linear_quadratic/spg" in output
    )
    for stale in (
        "reports/linear_quadratic/spg/report.html",
        "reports/linear_quadratic/spg/figures",
        "reports/linear_quadratic/spg/metrics.json",
    ):
        assert not (root / stale).exists(), stale
    assert (root / "reports/linear_quadratic/rspg/report.html").exists()
    # the model restored (as `dvc checkout` would): evaluated and reported again
    shutil.rmtree(model)
    shutil.copytree(backup, model)
    assert snakemake_jobs(root) == {"evaluate": 1, "report": 1, "summary": 1, "all": 1}
    sh(root, str(BIN / "snakemake"), "--cores", "2")
    assert snakemake_jobs(root) == {}


@pytest.mark.slow  # retrains one run through DVC (~1 minute on top of the fixture)
def test_dvc_repro_and_metrics_diff(tiny_repo):
    root = tiny_repo
    dvc = str(BIN / "dvc")
    sh(root, dvc, "commit", "-f", "-q")  # adopt Snakemake's results
    assert "up to date" in sh(root, dvc, "repro").stdout
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "results")
    shown = sh(root, dvc, "metrics", "show").stdout
    for run in P.Pipeline.load(root=root).runs():
        assert run.metrics in shown

    params = root / "params" / "params.yaml"
    data = yaml.safe_load(params.read_text())
    data["algos"]["spg"] = {"lr": 0.05}
    params.write_text(yaml.safe_dump(data, sort_keys=False))
    out = sh(root, dvc, "repro").stdout
    assert "Running stage 'train@linear_quadratic-spg'" in out
    assert "Running stage 'train@linear_quadratic-rspg'" not in out
    assert "Running stage 'report@linear_quadratic-spg'" in out
    diff = sh(root, dvc, "metrics", "diff").stdout
    assert "reports/linear_quadratic/spg/metrics.json" in diff and "exploitability" in diff
    assert "reports/linear_quadratic/rspg/metrics.json" not in diff
    sh(root, dvc, "plots", "show", "-q")  # the training curves render


def _evaluate_one_seed(tmp_path, game, overrides, scale=1.0):
    """`evaluate_run` (4 episodes, seed 3) of an untrained one-seed SPG model of ``game``
    whose parameters are multiplied by ``scale``; writes tmp_path/m.json, c.csv, t.nc."""
    from mfax.multiseed import save_seeds
    from mfax.pipeline.evaluate import evaluate_run
    from mfax.training import TrainConfig, TrainResult, make_train

    cfg = TrainConfig.from_mapping(
        {
            "num_iterations": 2,
            "eval_every": 1,
            "num_envs": 1,
            "hidden": [4],
            "embed_dim": 2,
            "game": overrides,
        },
        game=game,
        algo="spg",
    )
    trainer = make_train(cfg)
    params = jax.tree_util.tree_map(lambda x: x * scale, trainer.init(jax.random.key(0)).params)
    row = {
        "iteration": 0,
        "seconds": 0.0,
        "exploitability": 1.0,
        "policy_return": 0.0,
        "best_response_return": 1.0,
        "exploitability_undiscounted": 1.0,
    }
    save_seeds(
        [TrainResult(trainer, 0, params, [row], np.zeros(0), 0.0, 0.0, 0.0)], tmp_path / "model"
    )
    return evaluate_run(
        tmp_path / "model",
        num_envs=4,
        seed=3,
        episodes=1,
        metrics_path=tmp_path / "m.json",
        curve_path=tmp_path / "c.csv",
        trajectory_path=tmp_path / "t.nc",
    )


SMALL_MACRO = {"num_wealth": 6, "num_income": 2, "num_actions": 3, "horizon": 3}


@pytest.mark.parametrize(
    "game, overrides",
    [
        ("beach_bar_1d", {"num_states": 7, "horizon": 4}),  # finite noise: bar x closure coin
        ("macro", SMALL_MACRO),
    ],
)
def test_evaluate_stage_reports_the_adapted_exploitability(tmp_path, game, overrides):
    """metrics.json keeps ``exploitability`` (hindsight, every game) and adds the adapted
    one: exact where the noise is finite, the bracket where it is continuous."""
    m = _evaluate_one_seed(tmp_path, game, overrides)
    assert json.loads((tmp_path / "m.json").read_text()) == m
    agent = mfax.load_agent(tmp_path / "model" / "seed_0")
    key = jax.random.key(3)
    hindsight = mfax.evaluate_policy(agent.game, agent, key, 4, gamma=agent.gamma)
    assert m["exploitability"] == pytest.approx(float(hindsight.exploitability), rel=1e-6)
    assert m["exploitability_kind"].startswith("hindsight")
    if game == "beach_bar_1d":
        exact = mfax.evaluate_policy(
            agent.game, agent, key, gamma=agent.gamma, noise="exact", best_response="adapted"
        )
        assert m["exploitability_exact_adapted"] == pytest.approx(float(exact.exploitability))
        assert m["exploitability_lower"] is None
    else:
        assert m["exploitability_exact_adapted"] is None
        assert m["exploitability_lower"] <= m["exploitability_upper"] + 1e-6
        assert m["exploitability_upper"] == pytest.approx(m["exploitability"], rel=1e-6)
        assert m["exploitability_lower_se"] >= 0 and m["exploitability_upper_se"] >= 0


@pytest.mark.slow  # ~15 s; CI runs it
def test_evaluate_stage_refuses_a_non_finite_policy_with_continuous_noise(tmp_path):
    """Macro's hindsight numbers come from the bracket's program: a policy whose
    probabilities are NaN must still fail the stage (no metrics written), not pass with the
    bracket merely marked "not computed"."""
    from mfax.evaluation import NonFiniteResultError

    with pytest.raises(NonFiniteResultError, match="action probabilities are not finite"):
        _evaluate_one_seed(tmp_path, "macro", SMALL_MACRO, scale=1e30)
    assert not (tmp_path / "m.json").exists()
