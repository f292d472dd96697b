"""Benchmark SPG / RSPG training with ``noise: sampled`` against ``noise: exact``:
exploitability against wall-clock, same network, learning rate and iterations.

    python benchmarks/exact_noise.py                          # both games, RSPG, seed 0
    python benchmarks/exact_noise.py --games linear_quadratic --algos spg,rspg --seeds 0,1
    python benchmarks/exact_noise.py --games beach_bar_1d --noises sampled --sampled-envs 102
    python benchmarks/exact_noise.py --games beach_bar_1d --noises sampled \
        --iterations 1080 --eval-every 360               # the exact run's wall-clock

``sampled`` draws ``num_envs`` environments per iteration (the quick preset's:
8 for linear-quadratic, 4 for the beach bar); ``exact`` rolls out every
common-noise path once, weighted by its probability (2 for linear-quadratic,
102 for the beach bar with a random bar).  Every policy is scored by the same
exact evaluation (`mfax.evaluate_policy(noise="exact")`, hindsight best
response: the expectation of what a sampled evaluation estimates), outside
the timed training; ``adapted`` is the final policy's exact exploitability
against a best response that knows only the noise drawn so far.  Seconds
are training-chunk execution only (compilation and evaluation excluded).
"""

from __future__ import annotations

import argparse
import os
import time

import jax

import mfax
from mfax.training import TrainConfig, make_train

#: the quick preset's network and step (params/presets/quick.yaml)
NETWORK = dict(hidden=(64, 64), embed_dim=32, gru_hidden=32, lr=0.01)
#: game -> (iterations, evaluate every, sampled environments per iteration)
RUNS = {"linear_quadratic": (400, 100, 8), "beach_bar_1d": (60, 20, 4)}


def exact_scores(trainer, params) -> tuple[float, float]:
    """Exact hindsight and adapted exploitability of ``params``."""
    policy = trainer.policy(params)
    key = jax.random.key(0)  # unused with noise="exact"
    hind = mfax.evaluate_policy(trainer.game, policy, key, gamma=trainer.gamma, noise="exact")
    adap = mfax.evaluate_policy(
        trainer.game, policy, key, gamma=trainer.gamma, noise="exact", best_response="adapted"
    )
    return float(hind.exploitability), float(adap.exploitability)


def run(
    game: str, algo: str, noise: str, seed: int, num_envs: int, iterations: int, every: int
) -> dict:
    config = TrainConfig(
        game=game,
        algo=algo,
        noise=noise,
        num_iterations=iterations,
        eval_every=every,
        num_envs=num_envs,
        **NETWORK,
    )
    trainer = make_train(config)
    t0 = time.perf_counter()
    state = jax.jit(trainer.init)(jax.random.key(seed))
    chunk = jax.jit(trainer.chunk).lower(state).compile()
    compile_s = time.perf_counter() - t0
    seconds, curve = 0.0, [(0, 0.0, exact_scores(trainer, state.params)[0])]
    for done in range(every, iterations + 1, every):
        t = time.perf_counter()
        state, losses = chunk(state)
        jax.block_until_ready(losses)
        seconds += time.perf_counter() - t
        curve.append((done, seconds, exact_scores(trainer, state.params)[0]))
    assert int(state.failed_at) < 0, f"{game} {algo} {noise}: diverged"
    return dict(
        game=game,
        algo=algo,
        noise=noise,
        seed=seed,
        envs=trainer.num_envs,
        compile=compile_s,
        curve=curve,
        adapted=exact_scores(trainer, state.params)[1],
    )


def table(rows: list[dict]) -> str:
    points = [it for it, _, _ in rows[0]["curve"]]
    head = (
        "| game | algo | noise | envs / iteration | seed | "
        + " | ".join(f"it {it}" for it in points)
        + " | adapted, final | train s | s / iteration | compile s |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        its = r["curve"][-1][0]
        cells = " | ".join(f"{e:.4g}" for _, _, e in r["curve"])
        lines.append(
            f"| {r['game']} | {r['algo']} | {r['noise']} | {r['envs']} | {r['seed']} | "
            f"{cells} | {r['adapted']:.4g} | {r['curve'][-1][1]:.1f} | "
            f"{r['curve'][-1][1] / its:.4f} | {r['compile']:.1f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--games", default=",".join(RUNS))
    ap.add_argument("--algos", default="rspg")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--noises", default="sampled,exact")
    ap.add_argument(
        "--sampled-envs",
        default=None,
        help="comma list of num_envs for the sampled runs (default: RUNS)",
    )
    ap.add_argument("--iterations", type=int, default=None, help="default: RUNS")
    ap.add_argument("--eval-every", type=int, default=None, help="default: RUNS")
    args = ap.parse_args(argv)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for game in args.games.split(","):
        iterations, every, envs = RUNS[game]
        iterations, every = args.iterations or iterations, args.eval_every or every
        envs = [int(e) for e in args.sampled_envs.split(",")] if args.sampled_envs else [envs]
        rows = []
        for algo in args.algos.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                for noise in args.noises.split(","):
                    for n in envs if noise == "sampled" else envs[:1]:  # exact: unused
                        rows.append(run(game, algo, noise, seed, n, iterations, every))
                    print(
                        f"  done {game} {algo} {noise} seed {seed}: exploitability "
                        f"{rows[-1]['curve'][-1][2]:.4g}",
                        flush=True,
                    )
        print(
            f"\nexact exploitability (hindsight) by iteration, {game}:\n{table(rows)}\n", flush=True
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
