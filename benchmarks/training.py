"""Benchmark SPG / RSPG training: speed, factored first layer, exploitability.

    python benchmarks/training.py                      # everything (long on a small CPU)
    python benchmarks/training.py --sections timing --timing-iterations 4
    python benchmarks/training.py --sections quality --games linear_quadratic --seeds 0 --lrs 0.001
    python benchmarks/training.py --sections quality --published-python /tmp/pubvenv/bin/python \
        --published-repo /tmp/published-mfax      # MFAX itself in the same table

Sections (``--sections``, comma-separated):

- ``timing``: per game, SPG and RSPG at the published size (num_envs 128; 8 for
  macro; published game sizes) and at a small "quick" size: compile seconds
  (AOT) and seconds per training iteration (median over chunks, after compile);
  the matmul FLOPs of one iteration (counted on its jaxpr, every scan step
  included: XLA's cost analysis counts a loop's body once), the GFLOP/s
  achieved, and a roofline measured in the same run (an fp32 matmul of the
  network's row count, envs x states x horizon, and its first width) with the
  ratio.
- ``factored``: the network's forward + backward pass over all (env, state)
  pairs, naive first layer (concat per pair) vs factored (W_s state once per
  state + W_o obs once per env, broadcast add), at published sizes.
- ``quality``: with common noise on, exploitability (an upper bound: the best
  response knows the common-noise path in hindsight) after fixed iteration
  counts (`QUALITY_RUNS`) for SPG and RSPG on the three games, per learning
  rate of the published sweep, median and range over 3 seeds, with
  wall-clock: mfax and, given a virtual
  environment with the published code (``--published-python``,
  ``--published-repo``), MFAX itself in the same run (docs/LEARNING.md).
- ``devices``: the ``timing`` rows at the quick size with 1 and 2 host devices
  (``XLA_FLAGS=--xla_force_host_platform_device_count``, each in its own
  process): the environments of a batch are split over the devices
  (`mfax.sharding`); on a GPU machine, the devices it has.
- ``time``: exploitability after 30, 100 and 300 s of training for SPG and RSPG on
  the three games, 3 seeds, mfax and (given its environment) the published code
  (`time_to_eq.py`, which documents how the runs are planned and timed).
- ``tabular``: without common noise, SPG against `mfax.solve_tabular`
  (fictitious play); skipped if `mfax.solvers` is missing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import unittest.mock

import jax
import jax.numpy as jnp
from _common import QUICK, add_ent_coef, ent_kwargs, print_table

import mfax
from mfax.networks import NetworkApply, NetworkConfig, init_params
from mfax.training import TrainConfig, run_training

QUICK_ENVS = {"linear_quadratic": 8, "beach_bar_1d": 8, "macro": 2}


def matmul_flops(jaxpr) -> float:
    """Matmul FLOPs of a (closed) jaxpr: ``2 x |lhs| x prod(rhs free dims)`` per
    ``dot_general``, a scan's body times its length, the dearest branch of a ``cond``.
    XLA's cost analysis counts a loop's body once, whatever its trip count, so on a
    rollout of T steps it is T times too low; this count is what the roofline compares."""
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (_, rc), (_, rb) = eqn.params["dimension_numbers"]
            lhs, rhs = (v.aval.shape for v in eqn.invars[:2])
            free = [d for i, d in enumerate(rhs) if i not in rc and i not in rb]
            total += 2.0 * math.prod(lhs) * math.prod(free)
        elif name == "scan":
            total += eqn.params["length"] * matmul_flops(eqn.params["jaxpr"])
        elif name == "cond":
            total += max(matmul_flops(b) for b in eqn.params["branches"])
        elif name == "while":  # trip count unknown: its body once (none in the trainers)
            total += matmul_flops(eqn.params["body_jaxpr"])
        else:  # pjit, remat, custom_jvp / custom_vjp calls: their inner jaxpr once
            for v in eqn.params.values():
                if hasattr(v, "eqns") or hasattr(getattr(v, "jaxpr", None), "eqns"):
                    total += matmul_flops(v)
    return total


def iteration_flops(trainer) -> float:
    """Matmul FLOPs of one training iteration (rollout, loss, gradient, update), as the
    algorithm needs them: traced with `jax.checkpoint` as the identity, since the forward
    pass it recomputes in the backward (`mfax.dynamics.policy_step`) is not useful work
    (it would count the network's forward twice: 1.32x on macro SPG)."""
    state = trainer.init(jax.random.key(0))
    # JAX's tracing caches would otherwise hand back jaxprs traced with (before) or
    # without (after) the recomputation
    jax.clear_caches()
    with unittest.mock.patch.object(jax, "checkpoint", lambda fun, *args, **kwargs: fun):
        flops = matmul_flops(jax.make_jaxpr(trainer.iteration)(state, None))
    jax.clear_caches()
    return flops


def matmul_roofline(rows: int, width: int, repeats: int = 30) -> float:
    """GFLOP/s of an fp32 [rows, width] x [width, width] matmul, measured now (XLA): the
    fastest of ``repeats`` runs, the machine's capacity even when others share it."""
    a = jax.random.normal(jax.random.key(1), (rows, width), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (width, width), jnp.float32)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))
    best = math.inf
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(f(a, b))
        best = min(best, time.perf_counter() - t)
    return 2.0 * rows * width * width / best / 1e9


def timing(games, iterations, sizes, out):
    print(
        f"## Seconds per training iteration (median over chunks of 2 iterations, "
        f"{iterations} iterations after compile; compile = AOT of chunk + evaluation); "
        f"matmul FLOPs of one iteration (its jaxpr, every scan step counted), achieved "
        f"GFLOP/s, and the roofline measured in the same run: an fp32 matmul "
        f"[envs x states x horizon, width] x [width, width], width = the first hidden layer"
    )
    rows = []
    for game in games:
        for size in sizes:
            params = {} if size == "published" else QUICK[game]
            envs = None if size == "published" else QUICK_ENVS[game]
            for algo in ("spg", "rspg"):
                cfg = TrainConfig(
                    game=game,
                    game_params=params,
                    algo=algo,
                    num_iterations=iterations,
                    eval_every=2,
                    num_envs=envs,
                    eval_num_envs=envs,
                )
                r = run_training(cfg, 0, progress=False)
                secs = [b["seconds"] - a["seconds"] for a, b in zip(r.curve, r.curve[1:])]
                per_iter = statistics.median(secs) / cfg.eval_every
                g = r.trainer.game
                flops = iteration_flops(r.trainer)
                mm_rows, width = r.trainer.num_envs * g.num_states * g.horizon, cfg.hidden[0]
                roof = matmul_roofline(mm_rows, width)
                achieved = flops / per_iter / 1e9
                rows.append(
                    [
                        game,
                        size,
                        algo,
                        f"S={g.num_states} T={g.horizon}",
                        r.trainer.num_envs,
                        f"{r.compile_seconds:.1f}",
                        f"{per_iter:.4f}",
                        f"{flops:.3g}",
                        f"{achieved:.1f}",
                        f"{roof:.1f}",
                        f"{achieved / roof:.0%}",
                    ]
                )
                out.setdefault("timing", []).append(
                    dict(
                        game=game,
                        size=size,
                        algo=algo,
                        num_states=g.num_states,
                        horizon=g.horizon,
                        num_envs=r.trainer.num_envs,
                        compile_seconds=r.compile_seconds,
                        seconds_per_iteration=per_iter,
                        flops_per_iteration=flops,
                        achieved_gflops=achieved,
                        roofline_rows=mm_rows,
                        roofline_width=width,
                        roofline_gflops=roof,
                        roofline_fraction=achieved / roof,
                    )
                )
                print("  ", rows[-1], file=sys.stderr, flush=True)
    print_table(
        [
            "game",
            "size",
            "algo",
            "game size",
            "envs",
            "compile s",
            "s / iter",
            "FLOP / iter",
            "GFLOP/s",
            "roofline GFLOP/s",
            "of roofline",
        ],
        rows,
    )


def devices(games, iterations, counts, out):
    """The quick-size timing rows with each count of forced host devices (CPU), each
    measured in a fresh process (the device count is fixed when JAX starts)."""
    import subprocess
    import tempfile

    print(
        "## One job on several devices: seconds per iteration at the quick size, the "
        "environments split over N host devices (XLA_FLAGS), each N in its own process"
    )
    rows, base = [], {}
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}"}
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--sections",
                    "timing",
                    "--timing-sizes",
                    "quick",
                    "--games",
                    ",".join(games),
                    "--timing-iterations",
                    str(iterations),
                    "--json",
                    f"{tmp}/t.json",
                ],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
            with open(f"{tmp}/t.json") as f:
                timed = json.load(f)["timing"]
        for r in timed:
            key = (r["game"], r["algo"])
            base.setdefault(key, r["seconds_per_iteration"])
            rows.append(
                [
                    r["game"],
                    r["algo"],
                    r["num_envs"],
                    n,
                    f"{r['compile_seconds']:.1f}",
                    f"{r['seconds_per_iteration']:.4f}",
                    f"{base[key] / r['seconds_per_iteration']:.2f}x",
                ]
            )
            out.setdefault("devices", []).append({**r, "devices": n})
    print_table(
        ["game", "algo", "envs", "devices", "compile s", "s / iter", "speed-up vs first"], rows
    )


def _time(fn, *args, repeats=20):
    jax.block_until_ready(fn(*args))  # compile + warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def factored(games, out):
    print(
        "## First layer: naive concat per (env, state) vs factored (forward + backward of the "
        "policy network over all envs and states; median of 20 runs)"
    )
    rows = []
    for name in games:
        game = mfax.make_game(name)
        envs = 8 if name == "macro" else 128
        for recurrent in (False, True):
            times = {}
            for fact in (False, True):
                cfg = NetworkConfig(
                    recurrent=recurrent,
                    factored=fact,
                    head="beta" if name == "macro" else "categorical",
                )
                params = init_params(cfg, game, jax.random.key(0))
                apply = NetworkApply(cfg, game)
                carry = jnp.zeros((envs, cfg.gru_hidden)) if recurrent else ()
                obs = jax.random.uniform(jax.random.key(1), (envs, game.obs_dim))
                ts = jnp.full((envs,), 3)

                def loss(p, apply=apply, carry=carry, obs=obs, ts=ts):
                    probs, _ = jax.vmap(apply, (None, 0, 0, 0))(p, carry, obs, ts)
                    return jnp.sum(jnp.log(probs + 1e-8) * probs)

                times[fact] = _time(jax.jit(jax.grad(loss)), params)
            rows.append(
                [
                    name,
                    "rspg" if recurrent else "spg",
                    game.num_states,
                    envs,
                    f"{1e3 * times[False]:.2f}",
                    f"{1e3 * times[True]:.2f}",
                    f"{times[False] / times[True]:.2f}x",
                ]
            )
            out.setdefault("factored", []).append(
                dict(
                    game=name,
                    recurrent=recurrent,
                    num_states=game.num_states,
                    num_envs=envs,
                    naive_ms=1e3 * times[False],
                    factored_ms=1e3 * times[True],
                )
            )
            print("  ", rows[-1], file=sys.stderr, flush=True)
    print_table(["game", "net", "S", "envs", "naive ms", "factored ms", "speedup"], rows)


def _uniform(game, envs, gamma):
    r = mfax.evaluate_policy(game, mfax.uniform_policy(game), jax.random.key(12345), envs, gamma)
    return float(r.exploitability)


#: the issue-10 comparison settings per (game, algo): environments per iteration and the
#: iteration counts at which exploitability is reported (the last one is the run length)
QUALITY_RUNS = {
    ("linear_quadratic", "spg"): (8, (200, 1000)),
    ("linear_quadratic", "rspg"): (8, (200, 1000, 2400)),
    ("beach_bar_1d", "spg"): (128, (40,)),
    ("beach_bar_1d", "rspg"): (128, (40,)),
    ("macro", "spg"): (8, (20,)),
    ("macro", "rspg"): (8, (20,)),
}


def _spread(values):
    """``median [min, max]`` of a list of numbers."""
    med = statistics.median(values)
    return f"{med:.2f} [{min(values):.2f}, {max(values):.2f}]" if len(values) > 1 else f"{med:.2f}"


def _mfax_curve(game, algo, lr, seed, envs, checkpoints, hidden, ent_coef):
    iterations = checkpoints[-1]
    every = math.gcd(*checkpoints)
    # the published code reads macro states as values, the other games' as indices
    cfg = TrainConfig(
        game=game,
        algo=algo,
        lr=lr,
        num_iterations=iterations,
        eval_every=every,
        num_envs=envs,
        eval_num_envs=envs,
        hidden=hidden,
        state_input="values" if game == "macro" else "index",
        **ent_kwargs(ent_coef),
    )
    r = run_training(cfg, seed, progress=False)
    by_iter = {int(row["iteration"]): row["exploitability"] for row in r.curve}
    return [by_iter[c] for c in checkpoints], r.train_seconds + r.eval_seconds


def quality(games, algos, lrs, seeds, iteration_scale, hidden, published, out, ent_coef=None):
    """Exploitability after fixed iteration counts: mfax and, given the published code's
    python and repository, MFAX itself, per learning rate, over seeds."""
    # as the published scripts do, evaluate on as many environments as a training batch
    print(
        f"## Exploitability with common noise (upper bound: hindsight best response) on "
        f"the training batch's number of environments, median [min, max] over seeds "
        f"{seeds}; Adam, lr annealed "
        f"to 10%, clipping 1.0, published network, game sizes and settings"
    )
    rows = []
    for (game, algo), (envs, checkpoints) in QUALITY_RUNS.items():
        if game not in games or algo not in algos:
            continue
        checkpoints = tuple(max(1, round(c * iteration_scale)) for c in checkpoints)
        sides = ["mfax"] + (["MFAX (published)"] if published else [])
        for lr in lrs:
            for label in sides:
                curves, secs = [], []
                for seed in seeds:
                    if label != "mfax":
                        from published import run_published

                        res = run_published(
                            *published,
                            game=game,
                            algo=algo,
                            lr=lr,
                            seed=seed,
                            iterations=checkpoints[-1],
                            eval_every=math.gcd(*checkpoints),
                            num_envs=envs,
                        )
                        by_iter = dict(res["curve"])
                        curve, sec = [by_iter[c] for c in checkpoints], res["seconds"]
                    else:
                        curve, sec = _mfax_curve(
                            game, algo, lr, seed, envs, checkpoints, hidden, ent_coef
                        )
                    curves.append(curve)
                    secs.append(sec)
                    print(
                        f"   {game} {algo} {label} lr={lr:g} seed={seed}: "
                        f"{[round(c, 2) for c in curve]} ({sec:.0f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
                cells = [
                    f"{c}: {_spread([cv[i] for cv in curves])}" for i, c in enumerate(checkpoints)
                ]
                rows.append(
                    [
                        game,
                        algo,
                        envs,
                        label,
                        f"{lr:g}",
                        "; ".join(cells),
                        f"{statistics.median(secs):.0f}",
                    ]
                )
                out.setdefault("quality", []).append(
                    dict(
                        game=game,
                        algo=algo,
                        num_envs=envs,
                        side=label,
                        lr=lr,
                        seeds=list(seeds),
                        checkpoints=list(checkpoints),
                        curves=curves,
                        seconds=secs,
                    )
                )
    print_table(
        ["game", "algo", "envs", "code", "lr", "exploitability at iteration", "seconds"], rows
    )


def tabular(games, iterations, num_envs, lr, hidden, out):
    from mfax.solvers import solve_tabular

    print(
        f"## Without common noise: SPG ({iterations} iterations, lr {lr}, hidden {hidden}) vs "
        "solve_tabular (fictitious play, 200 iterations)"
    )
    rows = []
    for name in [g for g in games if g != "macro"]:
        params = dict(common_noise=False)
        if name == "beach_bar_1d":
            params["bar_location"] = 50
        cfg = TrainConfig(
            game=name,
            game_params=params,
            algo="spg",
            num_iterations=iterations,
            eval_every=iterations,
            num_envs=num_envs,
            eval_num_envs=1,
            lr=lr,
            hidden=hidden,
        )
        game = cfg.make_game()
        r = run_training(cfg, 0, progress=False)
        sol = solve_tabular(game, 200)
        uni = _uniform(game, 1, game.default_discount)
        rows.append(
            [
                name,
                f"{uni:.4f}",
                f"{r.curve[-1]['exploitability']:.4f}",
                f"{float(sol.exploitability[-1]):.4f}",
            ]
        )
        out.setdefault("tabular", []).append(
            dict(
                game=name,
                uniform=uni,
                spg=r.curve[-1]["exploitability"],
                tabular=float(sol.exploitability[-1]),
            )
        )
        print("  ", rows[-1], file=sys.stderr, flush=True)
    print_table(["game", "uniform", "SPG", "fictitious play"], rows)


def _published_pair(ap, args):
    """``(python, repo)`` of the published code's environment, or None."""
    if not (args.published_python or args.published_repo):
        return None
    if not (args.published_python and args.published_repo):
        ap.error("--published-python and --published-repo go together")
    return (args.published_python, args.published_repo)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default="timing,devices,factored,quality,time,tabular")
    ap.add_argument("--games", default="linear_quadratic,beach_bar_1d,macro")
    ap.add_argument("--timing-iterations", type=int, default=10)
    ap.add_argument(
        "--timing-sizes",
        default="published,quick",
        help="timing: published (the paper's sizes), quick (small games), or both",
    )
    ap.add_argument("--devices", default="1,2", help="devices: host device counts to compare")
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--num-envs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--hidden", default="128,128", help="MLP sizes for the quality and tabular sections"
    )
    ap.add_argument("--algos", default="spg,rspg", help="quality: spg, rspg or both")
    ap.add_argument("--lrs", default="0.0001,0.001,0.01", help="quality: the learning rates")
    ap.add_argument("--seeds", default="0,1,2", help="quality: seeds")
    add_ent_coef(ap)
    ap.add_argument(
        "--iteration-scale",
        type=float,
        default=1.0,
        help="quality: multiply the iteration counts (e.g. 0.2 for a quick look)",
    )
    ap.add_argument(
        "--published-python",
        default=None,
        help="quality: the python of a virtual environment with the published "
        "MFAX code's dependencies (then --published-repo is its checkout)",
    )
    ap.add_argument("--published-repo", default=None)
    ap.add_argument("--json", default=None, help="also write the numbers as JSON")
    args = ap.parse_args(argv)
    sections = args.sections.split(",")
    games = args.games.split(",")
    hidden = tuple(int(h) for h in args.hidden.split(","))
    print(
        f"# mfax training benchmark (jax {jax.__version__}, {jax.devices()[0].platform}: "
        f"{jax.devices()[0].device_kind}, {jax.device_count()} device(s), {os.cpu_count()} "
        f"CPUs, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())})\n"
    )
    out: dict = {"settings": vars(args)}
    if "timing" in sections:
        timing(games, args.timing_iterations, args.timing_sizes.split(","), out)
    if "devices" in sections:
        devices(games, args.timing_iterations, [int(n) for n in args.devices.split(",")], out)
    if "factored" in sections:
        factored(games, out)
    if "quality" in sections:
        published = _published_pair(ap, args)
        quality(
            games,
            args.algos.split(","),
            [float(x) for x in args.lrs.split(",")],
            [int(x) for x in args.seeds.split(",")],
            args.iteration_scale,
            hidden,
            published,
            out,
            args.ent_coef,
        )
    if "time" in sections:
        from time_to_eq import time_to_equilibrium

        time_to_equilibrium(
            games,
            args.algos.split(","),
            [int(x) for x in args.seeds.split(",")],
            [30.0, 100.0, 300.0],
            _published_pair(ap, args),
            out,
            args.lr,
            args.ent_coef,
        )
    if "tabular" in sections:
        tabular(games, args.iterations, args.num_envs, args.lr, hidden, out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
