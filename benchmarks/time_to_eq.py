"""Time to a good equilibrium: exploitability after a wall-clock budget (30, 100, 300 s).

    python benchmarks/time_to_eq.py --games linear_quadratic --algos spg,rspg --seeds 0,1,2
    python benchmarks/time_to_eq.py ... --published-python /tmp/pubvenv/bin/python \
        --published-repo /tmp/published-mfax      # the published MFAX code in the same table

(also ``benchmarks/training.py --sections time``).  Each side plans one run for the
largest budget at its own speed, as a user with that budget would: a short calibration
run measures its compile time and seconds per iteration, then the run gets as many
iterations as fit (the learning rate anneals to 10% over them) and evaluations about
every 1/30 of the budget.  The exploitability at budget ``b`` is that of the last
evaluation whose time -- compilation of the training step plus the training calls,
evaluations excluded, as the published script's own "Train Time" counts -- is at most
``b`` (iteration 0 counts at time 0).  Exploitability as the published scripts report
it: on as many sampled environments as a training batch, hindsight best response.
Settings per game as the quality section (`QUALITY_RUNS`): published network, Adam,
clipping 1.0, lr 1e-3 unless ``--lr``.

To compare the two codes at one load, run one side per process, side by side, e.g. the
published code planned for 300 s and mfax planned for 100 s (``--budgets 30,100``):

    python benchmarks/time_to_eq.py --sides published --budgets 30,100,300 ... &
    python benchmarks/time_to_eq.py --sides mfax --budgets 30,100 --lr 1e-2

``--num-envs`` changes mfax's training batch (environments per iteration), ``--noise
exact`` trains it on every common-noise path instead; the exploitability is still
measured on the published batch's size, so the rows compare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import jax
import numpy as np
from _common import add_ent_coef, ent_kwargs

from mfax.training import TrainConfig, make_train
from mfax.training.config import NOISE_CHOICES
from mfax.training.driver import compiled, drive
from mfax.training.interrupt import interrupt_guard

#: ``--sides`` name -> the code's label in the table
SIDES = {"mfax": "mfax", "published": "MFAX (published)"}
#: environments per iteration and calibration iterations per game
ENVS = {"linear_quadratic": 8, "beach_bar_1d": 128, "macro": 8}
CALIBRATE = {"linear_quadratic": 40, "beach_bar_1d": 4, "macro": 2}


def _config(game, algo, lr, iterations, eval_every, ent_coef=None, num_envs=None, noise="sampled"):
    # the training batch may change (--num-envs, --noise); the evaluation stays the
    # published one's
    return TrainConfig(
        game=game,
        algo=algo,
        lr=lr,
        num_iterations=iterations,
        eval_every=eval_every,
        num_envs=num_envs or ENVS[game],
        eval_num_envs=ENVS[game],
        state_input="values" if game == "macro" else "index",
        noise=noise,
        **ent_kwargs(ent_coef),
    )


def _plan(budget, compile_s, per_iter, calibrated):
    """Iterations that fit in ``budget`` and an evaluation interval of about budget / 30."""
    n = max(calibrated, int((budget - compile_s) / max(per_iter, 1e-9)))
    every = max(1, n // 30)
    return n - n % every, every


def _mfax_run(game, algo, lr, seed, iterations, eval_every, stop_after=None, **settings):
    """``(curve [(seconds, exploitability)], compile seconds, seconds per iteration)``;
    ``settings``: `_config`'s ``ent_coef``, ``num_envs`` and ``noise``."""
    cfg = _config(game, algo, lr, iterations, eval_every, **settings)
    trainer = make_train(cfg)
    t0 = time.perf_counter()
    init = jax.jit(trainer.init, compiler_options=cfg.compiler_options())
    state = init(jax.random.key(seed))
    advance, evaluate = compiled(trainer, state)
    compile_s = time.perf_counter() - t0
    with interrupt_guard() as flag:

        def stop(progress):  # the budget is spent: stop after this evaluation
            if stop_after is not None and compile_s + progress.train_seconds >= stop_after:
                flag.requested = True

        run = drive(
            advance,
            evaluate,
            state,
            iterations,
            eval_every,
            progress=False,
            interrupt=flag,
            on_evaluation=stop,
        )
    # iteration 0 (the initial policy) counts at time 0
    curve = [(0.0, run.curve[0]["exploitability"])]
    curve += [(compile_s + r["seconds"], r["exploitability"]) for r in run.curve[1:]]
    iters = int(np.asarray(run.state.step))
    return curve, compile_s, run.train_seconds / max(iters, 1), iters


def mfax_side(game, algo, lr, seed, budget, **settings):
    """One mfax run planned for ``budget`` s; ``settings`` as `_mfax_run`'s."""
    n_cal = CALIBRATE[game]
    _, compile_s, per_iter, _ = _mfax_run(game, algo, lr, seed, n_cal, n_cal, **settings)
    n, every = _plan(budget, compile_s, per_iter, n_cal)
    curve, _, per_iter, iters = _mfax_run(
        game, algo, lr, seed, n, every, stop_after=budget, **settings
    )
    return dict(curve=curve, iterations=iters, seconds_per_iteration=per_iter)


def published_side(published, game, algo, lr, seed, budget):
    from published import run_published

    n_cal = CALIBRATE[game]
    cal = run_published(*published, game, algo, lr, seed, 2 * n_cal, n_cal, ENVS[game])
    (_, t1), (_, t2) = cal["times"][1], cal["times"][2]
    per_iter = (t2 - t1) / n_cal
    n, every = _plan(budget, t1 - per_iter * n_cal, per_iter, n_cal)
    res = run_published(*published, game, algo, lr, seed, n, every, ENVS[game])
    curve = [(t, e) for (_, t), (_, e) in zip(res["times"], res["curve"])]
    return dict(curve=curve, iterations=res["curve"][-1][0], seconds_per_iteration=per_iter)


def at_budget(curve, budget):
    """Exploitability of the last evaluation at or before ``budget`` seconds (None if the
    run's first evaluation after iteration 0 came later than that and none before)."""
    done = [e for t, e in curve if t <= budget]
    return done[-1] if done else None


def _cell(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    med = statistics.median(vals)
    return f"{med:.2f} [{min(vals):.2f}, {max(vals):.2f}]" + (
        "" if len(vals) == len(values) else f" ({len(vals)}/{len(values)} seeds)"
    )


def time_to_equilibrium(
    games,
    algos,
    seeds,
    budgets,
    published,
    out,
    lr=1e-3,
    ent_coef=None,
    sides=None,
    num_envs=None,
    noise="sampled",
):
    from _common import print_table

    budget = max(budgets)
    print(
        f"## Exploitability after {', '.join(f'{b:g}' for b in budgets)} s of training "
        f"(compile + training calls, evaluations excluded), each run planned for {budget:g} s "
        f"at its own speed; median [min, max] over seeds {list(seeds)}; lr {lr:g}"
        + (f"; mfax trains on {num_envs} environments per iteration" if num_envs else "")
        + ("; mfax trains on every common-noise path (noise: exact)" if noise == "exact" else "")
    )
    rows = []
    for game in games:
        for algo in algos:
            default = [SIDES["mfax"]] + ([SIDES["published"]] if published else [])
            for label in sides or default:
                results = []
                for seed in seeds:
                    if label == SIDES["mfax"]:
                        r = mfax_side(
                            game,
                            algo,
                            lr,
                            seed,
                            budget,
                            ent_coef=ent_coef,
                            num_envs=num_envs,
                            noise=noise,
                        )
                    else:
                        r = published_side(published, game, algo, lr, seed, budget)
                    results.append(r)
                    print(
                        f"   {game} {algo} {label} seed={seed}: "
                        f"{[at_budget(r['curve'], b) for b in budgets]} "
                        f"({r['iterations']} iterations, {r['seconds_per_iteration']:.4f} s each)",
                        file=sys.stderr,
                        flush=True,
                    )
                rows.append(
                    [game, algo, label]
                    + [_cell([at_budget(r["curve"], b) for r in results]) for b in budgets]
                    + [f"{statistics.median(r['seconds_per_iteration'] for r in results):.4f}"]
                )
                out.setdefault("time", []).append(
                    dict(game=game, algo=algo, side=label, lr=lr, seeds=list(seeds), runs=results)
                    | ({"num_envs": num_envs} if num_envs and label == SIDES["mfax"] else {})
                    | ({"noise": noise} if label == SIDES["mfax"] else {})
                )
    print_table(["game", "algo", "code"] + [f"{b:g} s" for b in budgets] + ["s / iteration"], rows)


def main(argv=None):
    import json
    import os

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--games", default="linear_quadratic,beach_bar_1d,macro")
    ap.add_argument("--algos", default="spg,rspg")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--budgets", default="30,100,300", help="seconds")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--num-envs",
        type=int,
        default=None,
        help="mfax's environments per iteration (default: the published batch, ENVS); "
        "the exploitability is still measured on the published batch's size",
    )
    add_ent_coef(ap)
    ap.add_argument(
        "--noise",
        default="sampled",
        choices=sorted(NOISE_CHOICES),
        help="mfax's training batch: sampled environments, or every common-noise path "
        "weighted by its probability (exact); the evaluation is the same either way",
    )
    ap.add_argument("--published-python", default=None)
    ap.add_argument("--published-repo", default=None)
    ap.add_argument(
        "--sides",
        default=None,
        help="mfax, published or both (default: mfax, and the published code when given); "
        "one side per process lets two processes run the two codes at the same load",
    )
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if bool(a.published_python) != bool(a.published_repo):
        ap.error("--published-python and --published-repo go together")
    sides = None
    if a.sides is not None:
        chosen = a.sides.split(",")
        if any(c not in SIDES for c in chosen):
            ap.error(f"--sides {a.sides!r}: a comma-separated subset of mfax, published")
        if "published" in chosen and not a.published_python:
            ap.error("--sides published needs --published-python and --published-repo")
        sides = [SIDES[c] for c in chosen]
    print(
        f"# time to equilibrium (jax {jax.__version__}, {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})"
    )
    out: dict = {"settings": vars(a)}
    time_to_equilibrium(
        a.games.split(","),
        a.algos.split(","),
        [int(s) for s in a.seeds.split(",")],
        [float(b) for b in a.budgets.split(",")],
        (a.published_python, a.published_repo) if a.published_python else None,
        out,
        lr=a.lr,
        ent_coef=a.ent_coef,
        sides=sides,
        num_envs=a.num_envs,
        noise=a.noise,
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
