"""The pipeline under careless input (issue 8): unsafe run names, unquoted shell words,
numbers in scientific notation, bad training keys caught when params/ is loaded, and
outputs replaced from Python, never by a shell ``rm``.
"""

from __future__ import annotations

import ast
import re
import shlex
import string
import subprocess
from pathlib import Path

import pytest
import yaml
from test_pipeline import BIN, REPO, _env, _write_params, copy_repo

from mfax import pipeline as P

WORKFLOW = REPO / "workflow"


def _params(**extra) -> dict:
    return {"preset": "base", "grid": {"games": ["linear_quadratic"], "algos": ["spg"]}, **extra}


# ------------------------------------------------------------------- run names
@pytest.mark.parametrize(
    "value",
    [
        "relu CANARY",
        "relu;touch CANARY",
        "$(touch CANARY)",
        "../../CANARY",
        "a/b",
        "it's",
        "x\ny",
        "*",
        "",
        "..",
        {"a": 1},
        [1, "a b"],
    ],
)
def test_unsafe_sweep_value_is_a_params_error(tmp_path, value):
    root = _write_params(tmp_path, _params(sweep={"activation": [value]}))
    with pytest.raises(P.ParamsError) as err:
        P.Pipeline.load(root=root)
    msg = str(err.value)
    assert msg.startswith("params/params.yaml: sweep.activation")
    assert repr(value) in msg and "letters, digits" in msg


@pytest.mark.parametrize("key", ["a b", "x;y", "a/b"])
def test_unsafe_sweep_key_is_a_params_error(tmp_path, key):
    root = _write_params(tmp_path, _params(sweep={key: [1]}))
    with pytest.raises(
        P.ParamsError, match=r"params/params.yaml: sweep key: " + re.escape(repr(key))
    ):
        P.Pipeline.load(root=root)


def test_safe_sweep_values_make_plain_run_names(tmp_path):
    root = _write_params(
        tmp_path, _params(sweep={"lr": [1e-3, 0.01], "hidden": [[8, 8]], "activation": ["tanh"]})
    )
    names = {r.name for r in P.Pipeline.load(root=root).runs()}
    assert names == {
        "spg-activation=tanh-hidden=8x8-lr=0.001",
        "spg-activation=tanh-hidden=8x8-lr=0.01",
    }


def test_sweep_values_that_collide_as_names_are_an_error(tmp_path):
    root = _write_params(tmp_path, _params(sweep={"lr": [0.1, "0.1"]}))
    with pytest.raises(P.ParamsError, match="same run name"):
        P.Pipeline.load(root=root)


def test_snakemake_refuses_an_unsafe_run_name_and_deletes_nothing(tmp_path):
    def edit(p):
        p["sweep"] = {"activation": ["relu CANARY"]}

    root = copy_repo(tmp_path / "repo", edit)
    (root / "CANARY").write_text("keep me")
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1"],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "params/params.yaml: sweep.activation" in output and "relu CANARY" in output
    assert (root / "CANARY").read_text() == "keep me"


# ------------------------------------------------------------- shell quoting
def _shell_strings(path: Path) -> list[str]:
    """The ``shell:`` strings of a Snakemake file (each a Python string expression)."""
    lines = path.read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)shell:\s*(.*)$", line)
        if not m:
            continue
        indent, body = len(m.group(1)), [m.group(2)]
        for nxt in lines[i + 1 :]:
            if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                break
            body.append(nxt)
        out.append(ast.literal_eval("(" + "\n".join(body).strip().rstrip(",") + ")"))
    return out


def test_every_shell_rule_quotes_every_substitution():
    files = [WORKFLOW / "Snakefile", *sorted((WORKFLOW / "rules").glob("*.smk"))]
    commands = [cmd for f in files for cmd in _shell_strings(f)]
    assert len(commands) >= 4  # train, evaluate, report, summary
    for cmd in commands:
        fields = [
            (name, spec) for _, name, spec, _ in string.Formatter().parse(cmd) if name is not None
        ]
        assert fields, cmd
        for name, spec in fields:
            assert spec == "q", f"{{{name}}} in {cmd!r} is not quoted: write {{{name}:q}}"
        assert not re.search(r"\brm\b", cmd), f"outputs are removed from Python, not by {cmd!r}"


def test_no_shell_rm_in_the_workflow():
    for f in [WORKFLOW / "Snakefile", *(WORKFLOW / "rules").glob("*.smk")]:
        assert "rm -" not in f.read_text(), f


def test_dvc_commands_quote_every_word():
    pipe = P.Pipeline.load(root=REPO)
    stages = P.dvc_stages(pipe)
    cmds = [s["cmd"] if "cmd" in s else s["do"]["cmd"] for s in stages.values()]
    hostile = "a b;touch CANARY $(x) 'q'"
    for cmd in cmds:
        plain = re.sub(r"\$\{[^}]*\}", "x", cmd)
        nasty = re.sub(r"\$\{[^}]*\}", lambda m: hostile, cmd)
        assert len(shlex.split(nasty)) == len(shlex.split(plain)), cmd
        assert "touch" not in shlex.split(nasty), cmd


def test_dvc_yaml_commands_are_quoted_in_the_checked_in_file():
    doc = yaml.safe_load((REPO / "dvc.yaml").read_text())
    train = doc["stages"]["train"]["do"]["cmd"]
    assert "--out 'models/${item.game}/${item.run}'" in train


# ------------------------------------------------------------- numbers in params
def test_scientific_notation_in_params_yaml_and_presets(tmp_path):
    (tmp_path / "params" / "presets").mkdir(parents=True)
    (tmp_path / "params" / "presets" / "base.yaml").write_text(
        "defaults:\n  max_grad_norm: 1.0e+6\n  lr_end_fraction: .5\n"
    )
    (tmp_path / "params" / "params.yaml").write_text(
        "preset: base\n"
        "grid: {games: [linear_quadratic], algos: [spg, rspg]}\n"
        "sweep: {gamma: [9.9E-1]}\n"
        "defaults: {lr: 3e-4}\n"
        "algos: {rspg: {lr: 1E-2}}\n"
    )
    pipe = P.Pipeline.load(root=tmp_path)
    spg = pipe.train_config(pipe.run("linear_quadratic", "spg-gamma=0.99"))
    rspg = pipe.train_config(pipe.run("linear_quadratic", "rspg-gamma=0.99"))
    assert spg["lr"] == 3e-4 and isinstance(spg["lr"], float)
    assert rspg["lr"] == 1e-2
    assert spg["max_grad_norm"] == 1e6 and spg["lr_end_fraction"] == 0.5 and spg["gamma"] == 0.99
    text = P.config_text(spg)
    assert P.read_yaml(_write(tmp_path / "c.yaml", text))["lr"] == 3e-4


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, field",
    [
        ("defaults: {lr: nan}", "defaults.lr"),
        ("defaults: {lr: .inf}", "defaults.lr"),
        ("evaluation: {seed: -.inf}", "evaluation.seed"),
        ("sweep: {lr: [0.1, NaN]}", r"sweep.lr\[1\]"),
    ],
)
def test_nan_and_inf_in_params_need_a_finite_number(tmp_path, text, field):
    root = _write_params(tmp_path, {})
    (root / "params" / "params.yaml").write_text(
        "preset: base\ngrid: {games: [linear_quadratic], algos: [spg]}\n" + text + "\n"
    )
    with pytest.raises(
        P.ParamsError, match=f"params/params.yaml: {field} .*expected a finite number"
    ):
        P.Pipeline.load(root=root)


def test_snakemake_reads_params_with_mfax_and_honours_config_overrides(tmp_path):
    root = copy_repo(tmp_path / "repo")
    params = root / "params" / "params.yaml"
    params.write_text(params.read_text().replace("defaults: {}", "defaults: {lr: 3e-4}"))
    target = "data/linear_quadratic/spg/config.yaml"
    proc = subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--config", "preset=tiny", "--", target],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = P.read_yaml(root / target)
    assert cfg["lr"] == 3e-4  # params.yaml, read as a number
    assert cfg["num_iterations"] == 4  # the tiny preset, from --config
    assert "Using workflow specific profile workflow/profiles/default" in proc.stderr


@pytest.mark.parametrize("profile", ["default", "local"])
def test_profiles_run_the_configure_step_in_snakemakes_process(profile):
    # a `run:` rule otherwise starts a whole Snakemake process per run (4-8 s of a core)
    settings = P.read_yaml(REPO / "workflow" / "profiles" / profile / "config.yaml")
    assert settings["force-use-threads"] is True
    rules = "".join(f.read_text() for f in (REPO / "workflow" / "rules").glob("*.smk"))
    assert rules.count("    run:") == 1  # the configure rule; everything else is `shell:`


def test_train_jobs_go_before_evaluate_and_report_jobs():
    # the long jobs first, so that the short ones fill the cores to the end of a grid
    text = "".join(f.read_text() for f in (REPO / "workflow" / "rules").glob("*.smk"))
    blocks = dict(re.findall(r"^rule (\w+):\n((?:(?!^rule ).*\n?)*)", text, re.M))
    priority = {
        name: int(m.group(1)) if (m := re.search(r"^    priority: (\d+)", body, re.M)) else 0
        for name, body in blocks.items()
    }
    assert priority["train"] > max(priority["evaluate"], priority["report"])


# ------------------------------------------------ training configs, at load time
@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda p, s: p.update(defaults={"lrr": 0.1}),
            r"params/params.yaml: defaults\.lrr: .*'lrr'",
        ),
        (
            lambda p, s: p.update(algos={"spg": {"lr": "fast"}}),
            r"params/params.yaml: algos\.spg\.lr: ",
        ),
        (
            lambda p, s: p.update(pairs={"linear_quadratic": {"spg": {"hidden": [0]}}}),
            r"params/params.yaml: pairs\.linear_quadratic\.spg\.hidden: ",
        ),
        (
            lambda p, s: p.update(sweep={"num_iterations": [0]}),
            r"params/params.yaml: sweep\.num_iterations",
        ),
        (
            lambda p, s: s.update(games={"linear_quadratic": {"game": {"horizon": 0}}}),
            r"params/presets/base.yaml: games\.linear_quadratic\.game\.horizon: ",
        ),
        (
            lambda p, s: s.update(defaults={"game": {"bogus": 1}}),
            r"params/presets/base.yaml: defaults\.game\.bogus: ",
        ),
        (lambda p, s: p.update(defaults={"seeds": [1]}), r"params/params.yaml: defaults\.seeds"),
    ],
)
def test_bad_training_settings_fail_when_params_are_loaded(tmp_path, edit, match):
    params, preset = _params(), {}
    edit(params, preset)
    root = _write_params(tmp_path, params, {"base": preset})
    with pytest.raises(P.ParamsError, match=match):
        P.Pipeline.load(root=root)


def test_bad_training_key_fails_configure_dvc_yaml_and_dry_run(tmp_path):
    def edit(p):
        p["defaults"] = {"lrr": 0.1}

    root = copy_repo(tmp_path / "repo", edit)
    (root / "dvc.yaml").write_text((REPO / "dvc.yaml").read_text())
    for cmd in (
        ["mfax", "configure", "--list"],
        ["mfax", "dvc-yaml", "--check"],
        ["snakemake", "-n"],
    ):
        proc = subprocess.run(
            [str(BIN / cmd[0]), *cmd[1:]], cwd=root, env=_env(root), capture_output=True, text=True
        )
        output = proc.stdout + proc.stderr  # Snakemake reports errors on stdout
        assert proc.returncode != 0, cmd
        assert "params/params.yaml: defaults.lrr" in output, (cmd, output[-2000:])
        assert "Traceback" not in proc.stderr or cmd[0] == "snakemake"
    assert not (root / "data").exists()


# -------------------------------------------------------- output folders
def test_replace_dir_swaps_a_whole_folder(tmp_path):
    out = tmp_path / "models" / "g" / "spg"
    (out / "seed_2").mkdir(parents=True)
    (out / "seed_2" / "old").write_text("stale seed of an older grid")
    staged = P.staging_dir(out)
    assert staged.parent == out.parent and staged.name.startswith(".spg.tmp-")
    (staged / "seed_0").mkdir()
    (staged / "seed_0" / "new").write_text("new")
    P.replace_dir(staged, out)
    assert sorted(p.name for p in out.iterdir()) == ["seed_0"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["spg"]  # nothing left behind


def test_train_seeds_checks_out_before_training(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("num_iterations: 2\neval_every: 1\nlr: 1e-3\nseeds: [0]\n")
    out = tmp_path / "a_file"
    out.write_text("not a folder")
    proc = subprocess.run(
        [
            str(BIN / "mfax"),
            "train-seeds",
            "--game",
            "linear_quadratic",
            "--algo",
            "spg",
            "--config",
            str(cfg),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=_env(REPO),
    )
    assert proc.returncode == 2
    assert "is an existing file" in proc.stderr and "Traceback" not in proc.stderr
    assert "iterations" not in proc.stdout  # no training happened
    assert out.read_text() == "not a folder"


def test_from_snakemake_reads_params_and_overrides_like_mfax(tmp_path):
    """`snakemake --config` hands nested values over as strings (YAML BaseLoader) and
    `--configfile` would be read as YAML 1.1: both are read the way mfax reads params."""
    (tmp_path / "params" / "presets").mkdir(parents=True)
    for name in ("base", "other"):
        (tmp_path / "params" / "presets" / f"{name}.yaml").write_text("defaults: {lr: 1e-2}\n")
    (tmp_path / "params" / "params.yaml").write_text(
        "preset: base\ngrid: {games: [linear_quadratic], algos: [spg]}\ndefaults: {lr: 3e-4}\n"
    )
    extra = _write(tmp_path / "extra.yaml", "algos: {spg: {max_grad_norm: 5E-1}}\n")
    pipe = P.Pipeline.from_snakemake(
        tmp_path,
        [extra],
        {
            "preset": "other",
            "defaults": {"num_iterations": "8", "eval_every": "4", "lr_end_fraction": ".5"},
        },
    )
    cfg = pipe.train_config(pipe.runs()[0])
    assert pipe.params["preset"] == "other"
    assert cfg["lr"] == 3e-4 and cfg["max_grad_norm"] == 0.5 and cfg["lr_end_fraction"] == 0.5
    assert cfg["num_iterations"] == 8 and cfg["eval_every"] == 4
