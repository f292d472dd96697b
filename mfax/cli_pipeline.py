"""Pipeline commands (registered on `mfax.cli.app`), run by Snakemake rules and DVC stages.

    mfax configure     [--params params/params.yaml] [--set key=value ...]
    mfax train-seeds   --game G --algo A --config data/G/R/config.yaml --out models/G/R
    mfax evaluate-run --agent models/G/R --metrics ... --curve ... --trajectory ...
    mfax report        --metrics ... --curve ... --trajectory ... --out reports/G/R/report.html
    mfax summary       --out reports/summary.md reports/*/*/metrics.json
    mfax dvc-yaml      [--check]

Errors in user input (params, configs, model files) are reported as one
clear line on stderr with exit status 1 or 2, never as a traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer

from mfax.cli_common import command_group, parse_assignments

app = command_group()  # merged into the `mfax` app by mfax.cli


TIMINGS_HELP = "write this job's timings here as JSON (mfax.pipeline.timings)"


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _load_pipeline(params: Path, sets: list[str] | None):
    from mfax.pipeline import ParamsError, Pipeline

    overrides: dict = {}
    for key, value in parse_assignments(sets, "--set").items():
        node = overrides
        *parents, last = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    try:
        return Pipeline.load(params, overrides=overrides)
    except ParamsError as err:
        raise _fail(str(err), 2) from None


@app.command()
def configure(
    params: Path = typer.Option(Path("params/params.yaml"), "--params", help="the params file"),
    set_: list[str] | None = typer.Option(None, "--set", help="override key=value (dotted keys)"),
    list_runs: bool = typer.Option(False, "--list", help="only list the runs of the grid"),
) -> None:
    """Resolve params/ into one training config per run: data/<game>/<run>/config.yaml."""
    from mfax.pipeline import ParamsError, write_config

    pipe = _load_pipeline(params, set_)
    for run in pipe.runs():
        if list_runs:
            typer.echo(run.id)
            continue
        try:
            typer.echo(f"{write_config(pipe, run)}")
        except ParamsError as err:
            raise _fail(str(err), 2) from None


@app.command("train-seeds")
def train_seeds_cmd(
    game: str = typer.Option(..., "--game", help="game name (see `mfax games`)"),
    algo: str = typer.Option(..., "--algo", help="algorithm name"),
    config: Path = typer.Option(..., "--config", help="resolved config (mfax configure)"),
    out: Path = typer.Option(..., "--out", help="model folder: one agent per seed in seed_<s>/"),
    seeds: str | None = typer.Option(
        None, "--seeds", help="comma-separated seeds (default: the config's)"
    ),
    progress: bool | None = typer.Option(None, "--progress/--no-progress"),
    timings: Path | None = typer.Option(None, "--timings", help=TIMINGS_HELP),
    checkpoint: Path | None = typer.Option(
        None,
        "--checkpoint",
        help="folder for the training state while the run lasts: a "
        "rerun (after a crash, Ctrl-C, SIGTERM or preemption) continues from it; removed "
        "once the model is saved",
    ),
) -> None:
    """Train all seeds of a run together (one jitted, vmapped run) and save one agent per seed.

    The folder ``--out`` is replaced as a whole when training has finished (written next to
    it, then renamed): an interrupted or failed run leaves the previous folder as it was.
    With ``--checkpoint DIR`` the state is saved there as training goes, and the same
    command run again continues from it (bitwise the run never stopped).
    """
    import shutil

    from mfax.pipeline.timings import Timer

    timer = Timer("train")
    from mfax.algorithms import get_algorithm
    from mfax.io import read_yaml
    from mfax.multiseed import save_seeds, train_seeds
    from mfax.outputs import check_output_location
    from mfax.pipeline import replace_dir, staging_dir

    timer.lap("import")
    timer.watch_jax()
    try:
        mapping = read_yaml(config, "config file") or {}
    except ValueError as err:
        raise _fail(str(err), 2) from None
    if not isinstance(mapping, dict):
        raise _fail(f"config file {str(config)!r}: expected a mapping", 2)
    seed_list = mapping.pop("seeds", [0])
    if seeds is not None:
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise _fail(f"--seeds = {seeds!r} is not allowed; expected e.g. 0,1,2", 2) from None
    try:
        config_class = get_algorithm(algo).config_class
        cfg = config_class.from_mapping(mapping, game=game, algo=algo, source=f"config ({config})")
        check_output_location(out, "dir", "--out")  # before training: a bad --out fails now
        if checkpoint is not None:
            check_output_location(checkpoint, "dir", "--checkpoint")
        staged = staging_dir(out)
    except ValueError as err:
        raise _fail(str(err), 2) from None
    try:
        try:
            results = train_seeds(cfg, seed_list, progress=progress, checkpoint=checkpoint)
        except ValueError as err:
            raise _fail(str(err), 2) from None
        r0 = results[0]  # the seeds ran together: one clock
        timer.lap("setup", train=r0.train_seconds, evaluate=r0.eval_seconds)
        save_seeds(results, staged)
        replace_dir(staged, out)
        if checkpoint is not None:  # the model is saved: nothing left to continue
            shutil.rmtree(checkpoint, ignore_errors=True)
        timer.lap("write")
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # gone already when replace_dir succeeded
    if timings is not None:
        timer.write(timings)
    first = [r.curve[0]["exploitability"] for r in results]
    last = [r.curve[-1]["exploitability"] for r in results]
    typer.echo(
        f"{algo} on {game}, seeds {seed_list}: {r0.curve[-1]['iteration']} iterations, "
        f"exploitability {sum(first) / len(first):.6g} -> {sum(last) / len(last):.6g} "
        f"(mean over seeds); compile {r0.compile_seconds:.1f}s, train "
        f"{r0.train_seconds:.1f}s; saved to {out}"
    )
    for r in results:
        if r.diverged_at is not None:
            typer.echo(f"warning: {r.message}", err=True)


@app.command("evaluate-run")
def evaluate_run_cmd(
    agent: Path = typer.Option(
        ..., "--agent", help="model folder (mfax train-seeds or mfax train)"
    ),
    num_envs: int = typer.Option(32, "--num-envs", min=1, help="evaluation episodes"),
    seed: int = typer.Option(2024, "--seed", help="evaluation seed (the same for every agent)"),
    episodes: int = typer.Option(4, "--episodes", min=1, help="episodes stored in the NetCDF"),
    metrics: Path = typer.Option(..., "--metrics", help="metrics.json to write"),
    curve: Path = typer.Option(..., "--curve", help="training curve CSV to write"),
    trajectory: Path = typer.Option(..., "--trajectory", help="trajectory.nc to write"),
    report_: Path | None = typer.Option(
        None,
        "--report",
        help="the run's report.html: removed (with its figures/) when the "
        "model cannot be evaluated, so that no stale report looks current",
    ),
    timings: Path | None = typer.Option(None, "--timings", help=TIMINGS_HELP),
) -> None:
    """Evaluate every seed of a trained run; write metrics.json, curve.csv and trajectory.nc."""
    from mfax.pipeline.timings import Timer

    timer = Timer("evaluate")
    from mfax.pipeline import evaluate_run, remove_outputs

    try:
        m = evaluate_run(
            agent,
            num_envs=num_envs,
            seed=seed,
            episodes=episodes,
            metrics_path=metrics,
            curve_path=curve,
            trajectory_path=trajectory,
            timer=timer,
        )
    except (FileNotFoundError, ValueError, OSError) as err:
        stale = [metrics, curve, trajectory]
        if report_ is not None:
            stale += [report_, report_.parent / "figures"]
        removed = remove_outputs(*stale)
        raise _fail(
            f"{err}\nThe model {agent} could not be evaluated"
            + (f"; removed its stale results: {', '.join(removed)}" if removed else "")
            + f". If its files are missing or corrupted, retrain it: delete {agent} and run "
            "the pipeline again "
            "(`snakemake --cores 2` or `dvc repro`), or `snakemake --cores 2 --forcerun "
            f"{agent}/seeds.json`."
        ) from None
    timer.lap("write")
    if timings is not None:
        timer.write(timings)
    typer.echo(
        f"{agent}: exploitability {m['exploitability']:.6g} ± {m['exploitability_std']:.2g} "
        f"over {m['num_seeds']} seed(s) (untrained {m['initial_exploitability']}, uniform "
        f"{m['uniform_exploitability']:.6g}); wrote {metrics}, {curve}, {trajectory}"
    )


@app.command()
def report(
    metrics: Path = typer.Option(..., "--metrics"),
    curve: Path = typer.Option(..., "--curve"),
    trajectory: Path = typer.Option(..., "--trajectory"),
    out: Path = typer.Option(..., "--out", help="report.html (figures go to figures/ beside it)"),
    timings: Path | None = typer.Option(None, "--timings", help=TIMINGS_HELP),
) -> None:
    """Write one run's HTML report and its PNG figures."""
    from mfax.pipeline.timings import Timer

    timer = Timer("report")
    from mfax.pipeline.reports import write_report

    for p in (metrics, curve, trajectory):
        if not p.exists():
            raise _fail(f"{p} does not exist (run the evaluate stage first)")
    try:
        write_report(metrics, curve, trajectory, out, timer=timer)
    except (OSError, ValueError, KeyError) as err:
        raise _fail(
            f"cannot write the report from {metrics}, {curve}, {trajectory}: {err}"
        ) from None
    timer.lap("write")
    if timings is not None:
        timer.write(timings)
    typer.echo(f"wrote {out}")


@app.command()
def summary(
    metrics: list[Path] = typer.Argument(..., help="metrics.json files (reports/<game>/<run>/)"),
    out: Path = typer.Option(
        Path("reports/summary.md"),
        "--out",
        help="summary.md; summary.csv and summary.png go beside it",
    ),
) -> None:
    """One table (Markdown and CSV) and one comparison plot over all runs."""
    from mfax.pipeline.timings import Timer

    timer = Timer("summary")
    from mfax.pipeline.reports import write_summary

    timer.lap("import")
    missing = [str(p) for p in metrics if not p.exists()]
    if missing:
        raise _fail("missing metrics: " + ", ".join(missing))
    for path in write_summary(metrics, out, timer=timer):
        typer.echo(f"wrote {path}")


@app.command("dvc-yaml")
def dvc_yaml_cmd(
    params: Path = typer.Option(Path("params/params.yaml"), "--params"),
    out: Path = typer.Option(Path("dvc.yaml"), "--out"),
    check: bool = typer.Option(False, "--check", help="fail if the file is not up to date"),
) -> None:
    """Generate dvc.yaml (the same stages as the Snakefile) from params/."""
    from mfax.pipeline import dvc_yaml

    text = dvc_yaml(_load_pipeline(params, None))
    if check:
        if not out.exists() or out.read_text() != text:
            raise _fail(f"{out} is out of date with {params}; run `mfax dvc-yaml`")
        typer.echo(f"{out} is up to date")
        return
    from mfax.io import atomic_write

    atomic_write(out, text)
    typer.echo(f"wrote {out}")
