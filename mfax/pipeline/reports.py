"""Human reports: one HTML page per run, and a summary table and plot over all runs.

Inputs are the files the evaluate stage writes (``metrics.json``,
``curve.csv``, ``trajectory.nc``); nothing here trains or evaluates, so
changing this file (or the style below) reruns only the report stages.
Plots use matplotlib's Agg backend (no display needed).  One module of about
600 lines (the page, its four figures, the summary table and plot) because the
report and summary stages hash exactly this file (`mfax.pipeline.code.CODE_DEPS`).
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mfax.io import atomic_write, curve_csv, read_curve

#: the look of every figure; edit freely, only the report stages rerun
STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    # laid out once when drawn; bbox "tight" drew every figure twice (a report job 0.85x)
    "figure.constrained_layout.use": True,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9,
    "axes.titlesize": 10,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "image.cmap": "viridis",
}
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222}h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px
solid #ddd}table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em
.6em;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}img{max-width:100%}
.note{color:#666;font-size:.9em}pre{background:#f7f7f7;padding:.6em;font-size:.85em;overflow:auto}
"""
FIGURES = {
    "exploitability": "Exploitability during training (against iterations and wall-clock seconds)",
    "mean_field": "Mean field over time in a sample episode, and its common-noise path",
    "policy": "The policy in the sample episode: expected action per state over time, and at t = 0",
    "values": "Best-response value against policy value per state (t = 0, mean over episodes)",
}


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(STYLE)
    return plt


def run_of(metrics_path: str | os.PathLike) -> tuple[str, str]:
    """``reports/<game>/<run>/metrics.json`` -> (game, run)."""
    p = Path(metrics_path)
    return p.parent.parent.name, p.parent.name


def split_run(run: str) -> tuple[str, str]:
    """``spg-lr=0.001`` -> (``spg``, ``lr=0.001``); algorithm names never contain ``-``."""
    algo, _, setting = run.partition("-")
    return algo, setting.replace("-", ", ")


# ------------------------------------------------------------------- formatting
def fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}g}"
    return str(v)


def pm(mean: Any, std: Any) -> str:
    return fmt(mean) if std in (None, 0, 0.0) else f"{fmt(mean)} ± {fmt(std, 2)}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], left: int = 1) -> str:
    th = "".join(
        f"<th{' class=l' if i < left else ''}>{html.escape(h)}</th>" for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=l' if i < left else ''}>{html.escape(str(c))}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    line = lambda cells: "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"  # noqa: E731
    return "\n".join([line(header), line(["---"] * len(header))] + [line(r) for r in rows])


# ------------------------------------------------------------------------ figures
def _state_axis(ds):
    """The coordinate to plot states against, and a function reducing ``state`` to it.

    One per-state coordinate (a position): plot against it.  Several (wealth
    and income): plot against the first, summing (mass) or averaging
    (values) over the others.
    """
    names = [c for c in ds.coords if ds[c].dims == ("state",) and c != "state"]
    if not names:
        return "state", ds["state"].values, {"long_name": "state index"}, lambda da, how: da
    name = names[0]
    if len(names) == 1:
        return (
            name,
            ds[name].values,
            dict(ds[name].attrs),
            lambda da, how: da.swap_dims(state=name) if "state" in da.dims else da,
        )

    def reduce(da, how):
        g = da.groupby(ds[name])
        return g.sum() if how == "sum" else g.mean()

    values = np.unique(ds[name].values)
    return name, values, dict(ds[name].attrs), reduce


def _label(name, attrs):
    ln = attrs.get("long_name", name)
    units = attrs.get("units")
    return f"{ln} [{units}]" if units and units != "1" else ln


def figure_exploitability(plt, curve, metrics, path):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, x in zip(axes, ("iteration", "seconds")):
        xs = [r[x] for r in curve if x in r]
        ys = [r.get("exploitability", np.nan) for r in curve][: len(xs)]
        ax.plot(xs, ys, marker="o", ms=3, label="trained policy (mean over seeds)")
        lo = [r.get("exploitability_min") for r in curve][: len(xs)]
        hi = [r.get("exploitability_max") for r in curve][: len(xs)]
        if all(v is not None for v in lo + hi) and xs:
            ax.fill_between(xs, lo, hi, alpha=0.25, label="min-max over seeds")
        uni = metrics.get("uniform_exploitability")
        if uni is not None:
            ax.axhline(uni, color="gray", ls="--", lw=1, label="uniform policy")
        ax.set_xlabel("iteration" if x == "iteration" else "training wall-clock [s]")
        if all(y > 0 for y in ys if np.isfinite(y)) and ys:
            ax.set_yscale("log")
    axes[0].set_ylabel("exploitability")
    axes[0].legend()
    fig.savefig(path)
    plt.close(fig)


def figure_mean_field(plt, ds, path, episode=0):
    name, values, attrs, reduce = _state_axis(ds)
    mu = reduce(ds["mu"].isel(episode=episode), "sum").transpose("time", ...).values
    fig, (ax, ax2) = plt.subplots(
        2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [4, 1]}
    )
    m = ax.pcolormesh(ds["time"].values, values, mu.T, shading="nearest")
    fig.colorbar(
        m,
        ax=[ax, ax2],
        label="mass "
        + (
            "(summed over the other state coordinates)"
            if reduce is not None and name != "state" and len(values) < ds.sizes["state"]
            else ""
        ),
    )
    ax.set_ylabel(_label(name, attrs))
    ax.set_title(f"mean field, episode {int(ds['episode'].values[episode])}")
    ax2.step(ds["time"].values, ds["common_noise"].isel(episode=episode).values, where="post")
    ax2.set_ylabel("common noise z")
    ax2.set_xlabel("time t")
    fig.savefig(path)
    plt.close(fig)


def figure_policy(plt, ds, path, episode=0):
    name, values, attrs, reduce = _state_axis(ds)
    pol = ds["policy"].isel(episode=episode)
    mean_action = (pol * ds["action_value"]).sum("action")
    ma = reduce(mean_action, "mean").transpose("time", ...).values
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
    m = ax.pcolormesh(ds["time"].values, values, ma.T, shading="nearest", cmap="coolwarm")
    fig.colorbar(m, ax=ax, label="expected action value")
    ax.set_xlabel("time t")
    ax.set_ylabel(_label(name, attrs))
    ax.set_title("expected action")
    p0 = reduce(pol.isel(time=0), "mean").transpose(..., "action").values
    m2 = ax2.pcolormesh(ds["action_value"].values, values, p0, shading="nearest")
    fig.colorbar(m2, ax=ax2, label="probability")
    ax2.set_xlabel("action value")
    ax2.set_title("policy at t = 0")
    fig.savefig(path)
    plt.close(fig)


def figure_values(plt, ds, path):
    name, values, attrs, reduce = _state_axis(ds)
    v = reduce(ds["policy_value"].isel(time=0).mean("episode"), "mean").values
    vs = reduce(ds["best_response_value"].isel(time=0).mean("episode"), "mean").values
    gap = reduce(ds["exploitability_per_state"].mean("episode"), "mean").values
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
    ax.plot(values, vs, label="best response V*_0")
    ax.plot(values, v, label="policy V_0", ls="--")
    ax.set_xlabel(_label(name, attrs))
    ax.set_ylabel("value")
    ax.legend()
    ax2.plot(values, gap, color="C3")
    ax2.set_xlabel(_label(name, attrs))
    ax2.set_ylabel("V*_0 - V_0")
    ax2.set_title("exploitability per state")
    fig.savefig(path)
    plt.close(fig)


# ------------------------------------------------------------------------ report
def _adapted_rows(m: dict) -> list[list[str]]:
    """The adapted exploitability rows of a report: exact, or the bracket with its SEs."""
    if m.get("exploitability_exact_adapted") is not None:
        return [
            [
                "exploitability, adapted best response (exact)",
                fmt(m["exploitability_exact_adapted"]),
                "",
                "",
            ]
        ]
    if m.get("exploitability_lower") is not None:
        return [
            [
                "exploitability, adapted (bracket: lower, upper ± s.e.)",
                f"[{pm(m['exploitability_lower'], m.get('exploitability_lower_se'))}, "
                f"{pm(m['exploitability_upper'], m.get('exploitability_upper_se'))}]",
                "",
                "",
            ]
        ]
    return []


def adapted_cell(r: dict) -> str:
    """The summary's adapted-exploitability cell: the exact value or ``[lower, upper]``."""
    if r.get("exploitability_exact_adapted") is not None:
        return fmt(r["exploitability_exact_adapted"])
    if r.get("exploitability_lower") is not None:
        return f"[{fmt(r['exploitability_lower'])}, {fmt(r['exploitability_upper'])}]"
    return "-"


def write_report(metrics_path, curve_path, trajectory_path, out_html, timer=None) -> Path:
    """One run's HTML report, with its PNG figures in ``figures/`` next to it.  ``timer``
    (a `mfax.pipeline.timings.Timer`) records the phases: import, read, figures."""
    from mfax.pipeline.netcdf import read_netcdf

    plt = _plt()
    lap = timer.lap if timer is not None else (lambda name: None)
    lap("import")
    metrics = json.loads(Path(metrics_path).read_text())
    curve = read_curve(curve_path)
    ds = read_netcdf(trajectory_path)
    lap("read")
    out_html = Path(out_html)
    fig_dir = out_html.parent / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    figure_exploitability(plt, curve, metrics, fig_dir / "exploitability.png")
    figure_mean_field(plt, ds, fig_dir / "mean_field.png")
    figure_policy(plt, ds, fig_dir / "policy.png")
    figure_values(plt, ds, fig_dir / "values.png")
    lap("figures")

    game, run = run_of(metrics_path)
    algo, setting = split_run(run)
    m = metrics
    head = ["", "mean over seeds", "min", "max"]
    rows = [
        [
            "exploitability",
            pm(m.get("exploitability"), m.get("exploitability_std")),
            fmt(m.get("exploitability_min")),
            fmt(m.get("exploitability_max")),
        ],
        ["policy return", fmt(m.get("policy_return")), "", ""],
        ["best-response return", fmt(m.get("best_response_return")), "", ""],
        ["exploitability (undiscounted)", fmt(m.get("exploitability_undiscounted")), "", ""],
        *_adapted_rows(m),
        ["untrained policy's exploitability", fmt(m.get("initial_exploitability")), "", ""],
        ["uniform policy's exploitability", fmt(m.get("uniform_exploitability")), "", ""],
        ["training wall-clock [s]", fmt(m.get("train_seconds")), "", ""],
        ["iterations", fmt(m.get("iterations")), "", ""],
    ]
    per_seed = m.get("per_seed") or {}
    seed_rows = [
        [
            s,
            fmt(v.get("exploitability")),
            fmt(v.get("policy_return")),
            fmt(v.get("best_response_return")),
            fmt(v.get("initial_exploitability")),
        ]
        for s, v in sorted(per_seed.items(), key=lambda kv: int(kv[0]))
    ]
    attrs = ds.attrs
    try:
        gparams = json.dumps(
            json.loads(attrs.get("game_parameters", "{}")), indent=1, sort_keys=True
        )
    except ValueError:
        gparams = str(attrs.get("game_parameters"))
    figs = "".join(
        f"<h2>{html.escape(cap)}</h2><img src='figures/{key}.png' alt='{html.escape(cap)}'>"
        for key, cap in FIGURES.items()
    )
    title = f"{game} / {algo}" + (f" ({setting})" if setting else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>mfax: {
        html.escape(title)
    }</title>
<style>{CSS}</style></head><body>
<h1>mfax report: {html.escape(title)}</h1>
<p class=note>Evaluated on {fmt(attrs.get("evaluated_episodes"))} push-forward episodes
(common-noise samples); figures show stored episode 0. "exploitability" is the same quantity for
every game: {html.escape(str(m.get("exploitability_kind") or "hindsight"))}. Beside it, the
exploitability against a best response that knows only the noise drawn so far (adapted): exact
over every common-noise path where the noise is finite, a Monte-Carlo bracket [lower, upper]
where it is continuous.</p>
<h2>Metrics</h2>{_table(head, rows)}
<h2>Per seed</h2>{
        _table(
            ["seed", "exploitability", "policy return", "best-response return", "untrained"],
            seed_rows,
        )
    }
{figs}
<h2>Game parameters</h2><pre>{html.escape(gparams)}</pre>
<h2>Training configuration</h2><pre>{html.escape(str(attrs.get("training_config", "")))}</pre>
<p class=note>mfax {html.escape(str(attrs.get("mfax_version", "")))}; trajectory:
{html.escape(str(trajectory_path))}</p>
</body></html>
"""
    atomic_write(out_html, page)
    return out_html


# ----------------------------------------------------------------------- summary
SUMMARY_COLUMNS = (
    "game",
    "algorithm",
    "setting",
    "seeds",
    "exploitability",
    "exploitability_std",
    "exploitability_exact_adapted",
    "exploitability_lower",
    "exploitability_upper",
    "uniform_exploitability",
    "initial_exploitability",
    "policy_return",
    "best_response_return",
    "train_seconds",
    "iterations",
    "best_setting",
)
#: per-job timings (mfax.pipeline.timings): each stage's job wall-clock and its JAX compilation
TIMING_COLUMNS = tuple(
    f"{stage}_{what}"
    for stage in ("train", "evaluate", "report")
    for what in ("job_seconds", "compile_seconds", "cpu_seconds")
)


def run_timings(metrics_path: str | os.PathLike) -> dict[str, Any]:
    """The run's per-job timings (`TIMING_COLUMNS`; None where a job wrote none), found
    from its ``reports/<game>/<run>/metrics.json`` path."""
    from mfax.pipeline.timings import TIMED_STAGES, read_timings, timings_path

    root = Path(metrics_path).parents[3]
    game, run = run_of(metrics_path)
    out: dict[str, Any] = {}
    for stage in TIMED_STAGES:
        t = read_timings(root / timings_path(stage, game, run)) or {}
        out[f"{stage}_job_seconds"] = t.get("total")
        out[f"{stage}_compile_seconds"] = t.get("compile")
        out[f"{stage}_cpu_seconds"] = t.get("cpu")
    return out


def summary_rows(metrics_paths: Sequence[str | os.PathLike]) -> list[dict[str, Any]]:
    rows = []
    for p in metrics_paths:
        m = json.loads(Path(p).read_text())
        game, run = run_of(p)
        algo, setting = split_run(run)
        rows.append(
            {
                "game": game,
                "algorithm": algo,
                "setting": setting,
                "run": run,
                "seeds": m.get("num_seeds"),
                **{k: m.get(k) for k in SUMMARY_COLUMNS[4:-1]},
                **run_timings(p),
            }
        )
    # the best setting of every (game, algorithm) by mean exploitability over seeds
    best: dict[tuple[str, str], dict] = {}
    for r in rows:
        k = (r["game"], r["algorithm"])
        e = r.get("exploitability")
        if e is not None and math.isfinite(e) and (k not in best or e < best[k]["exploitability"]):
            best[k] = r
    for r in rows:
        r["best_setting"] = best.get((r["game"], r["algorithm"])) is r
    return rows


def _timing_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: per run, each job's wall-clock (its JAX compilation), and totals."""

    def cell(job, comp):
        if job is None:
            return "-"
        return f"{job:.1f}" + (f" ({comp:.1f})" if comp else "")

    stages = ("train", "evaluate", "report")
    total = {k: sum(r.get(k) or 0.0 for r in rows) for k in TIMING_COLUMNS}
    table = [
        [r["game"], r["run"]]
        + [cell(r.get(f"{s}_job_seconds"), r.get(f"{s}_compile_seconds")) for s in stages]
        + [
            fmt(r.get("train_seconds"), 3),
            f"{sum(r.get(f'{s}_job_seconds') or 0.0 for s in stages):.1f}",
        ]
        for r in rows
    ]
    table.append(
        ["**all runs**", ""]
        + [cell(total[f"{s}_job_seconds"], total[f"{s}_compile_seconds"]) for s in stages]
        + [
            fmt(sum(r.get("train_seconds") or 0.0 for r in rows), 3),
            f"{sum(total[f'{s}_job_seconds'] for s in stages):.1f}",
        ]
    )
    return [
        "## Where the time went",
        "",
        "Seconds of wall-clock per job, from its process's start (JAX's tracing and "
        "compiling, or loading from the persistent cache, in brackets); the training "
        "iterations themselves are `train seconds`. Jobs may run in parallel, so the "
        "pipeline's wall-clock is less than the sum. Per job and phase: "
        "`data/<game>/<run>/timings/<stage>.json`.",
        "",
        _md_table(
            ["game", "run", "train job", "evaluate job", "report job", "train seconds", "jobs"],
            table,
        ),
        "",
    ]


def write_summary(
    metrics_paths: Sequence[str | os.PathLike], out_md: str | os.PathLike, timer=None
) -> list[Path]:
    """``summary.md`` (table), ``summary.csv`` (same rows) and ``summary.png`` next to it.
    ``timer`` (`mfax.pipeline.timings.Timer`): the summary job's own timings, stated in
    summary.md as far as they are known before it is written."""
    rows = summary_rows(metrics_paths)
    out_md = Path(out_md)
    out_csv, out_png = out_md.with_suffix(".csv"), out_md.with_suffix(".png")
    atomic_write(out_csv, curve_csv(rows, list(SUMMARY_COLUMNS + TIMING_COLUMNS)))
    swept = any(r["setting"] for r in rows)
    header = (
        ["game", "algorithm"]
        + (["setting"] if swept else [])
        + [
            "exploitability (mean ± std over seeds)",
            "adapted",
            "untrained",
            "uniform policy",
            "policy return",
            "best-response return",
            "train seconds",
            "iterations",
        ]
        + (["best"] if swept else [])
    )
    table = []
    for r in rows:
        table.append(
            [r["game"], r["algorithm"]]
            + ([r["setting"] or "-"] if swept else [])
            + [
                pm(r["exploitability"], r["exploitability_std"]),
                adapted_cell(r),
                fmt(r["initial_exploitability"]),
                fmt(r["uniform_exploitability"]),
                fmt(r["policy_return"]),
                fmt(r["best_response_return"]),
                fmt(r["train_seconds"], 3),
                fmt(r["iterations"]),
            ]
            + (["**best**" if r["best_setting"] else ""] if swept else [])
        )
    text = [
        "# mfax summary",
        "",
        "Exploitability of each trained policy (mean and spread over its seeds), next to the "
        "untrained network's and the uniform policy's, with returns and training time. "
        "With common noise the exploitability is an upper bound (the best response knows the "
        "sampled path in hindsight). *adapted*: against a best response that knows only the "
        "noise drawn so far, exact where the noise is finite, a Monte-Carlo bracket "
        "[lower, upper] where it is continuous (macro).",
        "",
        _md_table(header, table),
        "",
    ]
    if swept:
        text += ["## Best setting per game and algorithm (lowest mean exploitability)", ""]
        text += [
            f"- {r['game']} / {r['algorithm']}: {r['setting']} "
            f"(exploitability {pm(r['exploitability'], r['exploitability_std'])})"
            for r in rows
            if r["best_setting"]
        ]
        text.append("")
    text += [f"![comparison]({out_png.name})", ""]
    _summary_plot(rows, [p for p in metrics_paths], out_png)
    text += _timing_table(rows)
    if timer is not None:
        timer.lap("tables_and_plot")
        own = timer.as_dict()
        text += [
            "This summary job: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in own.items() if isinstance(v, float))
            + ".",
            "",
        ]
    atomic_write(out_md, "\n".join(text))
    return [out_md, out_csv, out_png]


def _summary_plot(rows, metrics_paths, out_png):
    plt = _plt()
    games = list(dict.fromkeys(r["game"] for r in rows))
    fig, axes = plt.subplots(
        2, max(len(games), 1), figsize=(4.2 * max(len(games), 1), 6.4), squeeze=False
    )
    for j, game in enumerate(games):
        ax, ax2 = axes[0, j], axes[1, j]
        sub = [(r, p) for r, p in zip(rows, metrics_paths) if r["game"] == game]
        labels = [r["run"] for r, _ in sub]
        ys = np.array(
            [np.nan if r["exploitability"] is None else r["exploitability"] for r, _ in sub]
        )
        err = np.array([r["exploitability_std"] or 0.0 for r, _ in sub])
        x = np.arange(len(sub))
        ax.bar(x, ys, yerr=err, color=[f"C{i % 10}" for i in x], capsize=3)
        uni = [r["uniform_exploitability"] for r, _ in sub]
        if all(u is not None for u in uni):
            ax.scatter(x, uni, marker="_", s=400, color="k", zorder=3, label="uniform policy")
            ax.legend()
        ax.set_xticks(x, labels, rotation=30, ha="right")
        ax.set_title(game)
        if np.all(ys[np.isfinite(ys)] > 0):
            ax.set_yscale("log")
        ax.set_ylabel("exploitability")
        for i, (r, p) in enumerate(sub):
            curve_path = Path(p).with_name("curve.csv")
            if curve_path.exists():
                c = read_curve(curve_path)
                ax2.plot(
                    [row.get("seconds", np.nan) for row in c],
                    [row.get("exploitability", np.nan) for row in c],
                    color=f"C{i % 10}",
                    label=r["run"],
                )
        ax2.set_xlabel("training wall-clock [s]")
        ax2.set_ylabel("exploitability")
        if ax2.lines and all(np.all(np.asarray(line.get_ydata()) > 0) for line in ax2.lines):
            ax2.set_yscale("log")
        ax2.legend()
    fig.suptitle("mfax: exploitability per game and algorithm (lower is better)")
    fig.savefig(out_png)
    plt.close(fig)
