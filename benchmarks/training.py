"""Benchmark SPG / RSPG training: speed, factored first layer, exploitability.

    python benchmarks/training.py                      # everything (long on a small CPU)
    python benchmarks/training.py --sections timing --timing-iterations 4
    python benchmarks/training.py --sections quality --iterations 200 --games linear_quadratic

Sections (``--sections``, comma-separated):

- ``timing``: per game, SPG and RSPG at the published size (num_envs 128; 8 for
  macro; published game sizes) and at a small "quick" size: compile seconds
  (AOT) and seconds per training iteration (median over chunks, after compile).
- ``factored``: the network's forward + backward pass over all (env, state)
  pairs, naive first layer (concat per pair) vs factored (W_s state once per
  state + W_o obs once per env, broadcast add), at published sizes.
- ``quality``: with common noise on, exploitability (an upper bound: the best
  response knows the common-noise path in hindsight) at fixed iteration
  counts for SPG and RSPG, next to the uniform policy, on linear-quadratic
  and beach bar (RSPG should end below SPG: the observation hides time).
- ``tabular``: without common noise, SPG against `mfax.solve_tabular`
  (fictitious play); skipped if `mfax.solvers` is missing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import mfax
from mfax.networks import NetworkApply, NetworkConfig, init_params
from mfax.training import TrainConfig, run_training

from _common import QUICK, print_table  # noqa: E402  (benchmarks/ is on sys.path)

QUICK_ENVS = {"linear_quadratic": 8, "beach_bar_1d": 8, "macro": 2}


def timing(games, iterations, out):
    print(f"## Seconds per training iteration (median over chunks of 2 iterations, "
          f"{iterations} iterations after compile; compile = AOT of chunk + evaluation)")
    rows = []
    for game in games:
        for size in ("published", "quick"):
            params = {} if size == "published" else QUICK[game]
            envs = None if size == "published" else QUICK_ENVS[game]
            for algo in ("spg", "rspg"):
                cfg = TrainConfig(game=game, game_params=params, algo=algo,
                                  num_iterations=iterations, eval_every=2, num_envs=envs,
                                  eval_num_envs=envs)
                r = run_training(cfg, 0, progress=False)
                secs = [b["seconds"] - a["seconds"] for a, b in zip(r.curve, r.curve[1:])]
                per_iter = statistics.median(secs) / cfg.eval_every
                g = r.trainer.game
                rows.append([game, size, algo, f"S={g.num_states} T={g.horizon}",
                             r.trainer.num_envs, f"{r.compile_seconds:.1f}", f"{per_iter:.4f}"])
                out.setdefault("timing", []).append(dict(
                    game=game, size=size, algo=algo, num_states=g.num_states, horizon=g.horizon,
                    num_envs=r.trainer.num_envs, compile_seconds=r.compile_seconds,
                    seconds_per_iteration=per_iter))
                print("  ", rows[-1], file=sys.stderr, flush=True)
    print_table(["game", "size", "algo", "game size", "envs", "compile s", "s / iter"], rows)


def _time(fn, *args, repeats=20):
    jax.block_until_ready(fn(*args))  # compile + warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def factored(games, out):
    print("## First layer: naive concat per (env, state) vs factored (forward + backward of the "
          "policy network over all envs and states; median of 20 runs)")
    rows = []
    for name in games:
        game = mfax.make_game(name)
        envs = 8 if name == "macro" else 128
        for recurrent in (False, True):
            times = {}
            for fact in (False, True):
                cfg = NetworkConfig(recurrent=recurrent, factored=fact,
                                    head="beta" if name == "macro" else "categorical")
                params = init_params(cfg, game, jax.random.key(0))
                apply = NetworkApply(cfg, game)
                carry = jnp.zeros((envs, cfg.gru_hidden)) if recurrent else ()
                obs = jax.random.uniform(jax.random.key(1), (envs, game.obs_dim))
                ts = jnp.full((envs,), 3)

                def loss(p, apply=apply, carry=carry, obs=obs, ts=ts):
                    probs, _ = jax.vmap(apply, (None, 0, 0, 0))(p, carry, obs, ts)
                    return jnp.sum(jnp.log(probs + 1e-8) * probs)

                times[fact] = _time(jax.jit(jax.grad(loss)), params)
            rows.append([name, "rspg" if recurrent else "spg", game.num_states, envs,
                         f"{1e3 * times[False]:.2f}", f"{1e3 * times[True]:.2f}",
                         f"{times[False] / times[True]:.2f}x"])
            out.setdefault("factored", []).append(dict(
                game=name, recurrent=recurrent, num_states=game.num_states, num_envs=envs,
                naive_ms=1e3 * times[False], factored_ms=1e3 * times[True]))
            print("  ", rows[-1], file=sys.stderr, flush=True)
    print_table(["game", "net", "S", "envs", "naive ms", "factored ms", "speedup"], rows)


def _uniform(game, envs, gamma):
    r = mfax.evaluate_policy(game, mfax.uniform_policy(game), jax.random.key(12345), envs, gamma)
    return float(r.exploitability)


def quality(games, iterations, eval_every, num_envs, lr, hidden, out):
    games = [g for g in games if g != "macro"]
    print(f"## Exploitability with common noise (upper bound; same {num_envs} evaluation "
          f"environments per run), lr {lr}, num_envs {num_envs}, hidden {hidden}, published game "
          "sizes, seed 0")
    rows = []
    for name in games:
        cfgs = {algo: TrainConfig(game=name, algo=algo, num_iterations=iterations,
                                  eval_every=eval_every, num_envs=num_envs, lr=lr,
                                  hidden=hidden)
                for algo in ("spg", "rspg")}
        game = cfgs["spg"].make_game()
        uni = _uniform(game, num_envs, game.default_discount)
        curves = {}
        for algo, cfg in cfgs.items():
            r = run_training(cfg, 0, progress=False)
            curves[algo] = r.curve
            print(f"   {name} {algo}: {[round(c['exploitability'], 3) for c in r.curve]} "
                  f"({r.train_seconds:.0f}s)", file=sys.stderr, flush=True)
        for i, row in enumerate(curves["spg"]):
            rows.append([name, row["iteration"], f"{row['exploitability']:.4f}",
                         f"{curves['rspg'][i]['exploitability']:.4f}", f"{uni:.4f}"])
        out.setdefault("quality", []).append(dict(game=name, uniform=uni, lr=lr,
                                                  num_envs=num_envs, curves=curves))
    print_table(["game", "iteration", "SPG", "RSPG", "uniform"], rows)


def tabular(games, iterations, num_envs, lr, hidden, out):
    from mfax.solvers import solve_tabular

    print(f"## Without common noise: SPG ({iterations} iterations, lr {lr}, hidden {hidden}) vs "
          "solve_tabular (fictitious play, 200 iterations)")
    rows = []
    for name in [g for g in games if g != "macro"]:
        params = dict(common_noise=False)
        if name == "beach_bar_1d":
            params["bar_location"] = 50
        cfg = TrainConfig(game=name, game_params=params, algo="spg", num_iterations=iterations,
                          eval_every=iterations, num_envs=num_envs, eval_num_envs=1, lr=lr,
                          hidden=hidden)
        game = cfg.make_game()
        r = run_training(cfg, 0, progress=False)
        sol = solve_tabular(game, 200)
        uni = _uniform(game, 1, game.default_discount)
        rows.append([name, f"{uni:.4f}", f"{r.curve[-1]['exploitability']:.4f}",
                     f"{float(sol.exploitability[-1]):.4f}"])
        out.setdefault("tabular", []).append(dict(
            game=name, uniform=uni, spg=r.curve[-1]["exploitability"],
            tabular=float(sol.exploitability[-1])))
        print("  ", rows[-1], file=sys.stderr, flush=True)
    print_table(["game", "uniform", "SPG", "fictitious play"], rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default="timing,factored,quality,tabular")
    ap.add_argument("--games", default="linear_quadratic,beach_bar_1d,macro")
    ap.add_argument("--timing-iterations", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--num-envs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--hidden", default="128,128,128",
                    help="MLP sizes for the quality and tabular sections")
    ap.add_argument("--json", default=None, help="also write the numbers as JSON")
    args = ap.parse_args(argv)
    sections = args.sections.split(",")
    games = args.games.split(",")
    hidden = tuple(int(h) for h in args.hidden.split(","))
    print(f"# mfax training benchmark (jax {jax.__version__}, {jax.devices()[0].platform}, "
          f"{jax.device_count()} device(s))\n")
    out: dict = {"settings": vars(args)}
    if "timing" in sections:
        timing(games, args.timing_iterations, out)
    if "factored" in sections:
        factored(games, out)
    if "quality" in sections:
        quality(games, args.iterations, args.eval_every, args.num_envs, args.lr, hidden, out)
    if "tabular" in sections:
        tabular(games, args.iterations, args.num_envs, args.lr, hidden, out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
