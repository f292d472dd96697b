"""Benchmark the model-free learners (IPPO, RIPPO, M-OMD) and sample-based rollouts.

    python benchmarks/rl.py                                   # both sections
    python benchmarks/rl.py --sections rollout --agents 1000,10000,100000
    python benchmarks/rl.py --sections learning --games beach_bar_1d --iterations 40

Sections (``--sections``, comma-separated):

- ``rollout``: agent-steps per second of the sample-based game
  (`mfax.rollout(..., num_agents=N)`), published game sizes, uniform policy
  table (so the policy network's cost is excluded), ``--rollout-envs``
  environments, median of ``--repeats`` runs after compilation.
- ``learning``: with common noise on, at reduced game sizes (``QUICK``), each
  RL learner next to SPG / RSPG (`mfax.training`): exploitability (an upper
  bound: the best response knows the common-noise path in hindsight) against
  outer iterations and training wall-clock (compilation and evaluation
  excluded), the uniform policy's exploitability, and the best SPG / RSPG
  exploitability reached within each RL run's wall-clock.

Timings are wall-clock on whatever machine runs this: on a shared CPU they
are noisy.  ``--json FILE`` writes every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
from _common import QUICK, print_table

import mfax
from mfax.rl import RLConfig
from mfax.rl import run_training as run_rl
from mfax.training import TrainConfig
from mfax.training import run_training as run_hsm


def rollout(games, agents, envs, repeats, out):
    print(
        f"## Sample-based rollouts: agent-steps / s (published game sizes, {envs} envs, "
        f"uniform policy table, median of {repeats} runs after compilation)"
    )
    rows = []
    for name in games:
        game = mfax.make_game(name)
        policy = mfax.uniform_policy(game)
        for n in agents:

            def fn(k, game=game, policy=policy, n=n):
                return mfax.rollout(game, policy, k, envs, num_agents=n).mu_final

            t = time.perf_counter()
            jax.block_until_ready(fn(jax.random.key(0)))
            compile_s = time.perf_counter() - t
            times = []
            for i in range(repeats):
                t = time.perf_counter()
                jax.block_until_ready(fn(jax.random.key(i + 1)))
                times.append(time.perf_counter() - t)
            med = statistics.median(times)
            steps = envs * n * game.horizon
            rows.append(
                [
                    name,
                    f"S={game.num_states} T={game.horizon}",
                    n,
                    envs,
                    f"{compile_s:.1f}",
                    f"{1e3 * med:.1f}",
                    f"{steps / med:.3g}",
                ]
            )
            out.setdefault("rollout", []).append(
                dict(
                    game=name,
                    num_states=game.num_states,
                    horizon=game.horizon,
                    num_agents=n,
                    num_envs=envs,
                    first_call_seconds=compile_s,
                    median_seconds=med,
                    agent_steps_per_second=steps / med,
                )
            )
            print("  ", rows[-1], file=sys.stderr, flush=True)
    print_table(["game", "size", "N", "envs", "1st call s", "median ms", "agent-steps/s"], rows)


def _best_within(curve, seconds):
    vals = [r["exploitability"] for r in curve if r["seconds"] <= seconds + 1e-9]
    return min(vals) if vals else float("nan")


def learning(games, algos, iterations, eval_every, hsm_iterations, out, seed):
    rl_common = dict(
        num_iterations=iterations,
        eval_every=eval_every,
        num_envs=4,
        eval_num_envs=8,
        num_agents=1000,
        num_agents_per_env=32,
        num_updates_per_iteration=10,
        hidden=(64, 64),
        embed_dim=32,
        gru_hidden=32,
        critic_hidden=(64,),
        num_minibatches=2,
        lr=3e-3,
        buffer_size=8192,
        batch_size=256,
    )
    hsm_common = dict(
        num_iterations=hsm_iterations,
        eval_every=max(hsm_iterations // 10, 1),
        num_envs=8,
        eval_num_envs=8,
        hidden=(64, 64),
        embed_dim=32,
        gru_hidden=32,
        lr=3e-3,
    )
    print(
        f"## Learning with common noise (reduced game sizes {QUICK}); RL: {rl_common}; "
        f"SPG/RSPG: {hsm_common}; seed {seed}; exploitability is an upper bound "
        "(hindsight best response), same 8 evaluation environments within a run"
    )
    rows = []
    for name in games:
        params = QUICK[name]
        game = mfax.make_game(name, **params)
        uni = mfax.evaluate_policy(game, mfax.uniform_policy(game), jax.random.key(12345), 8)
        runs = {}
        for algo in algos:
            if algo in ("spg", "rspg"):
                cfg = TrainConfig(game=name, game_params=params, algo=algo, **hsm_common)
                r = run_hsm(cfg, seed, progress=False)
            else:
                cfg = RLConfig(game=name, game_params=params, algo=algo, **rl_common)
                r = run_rl(cfg, seed, progress=False)
            runs[algo] = r
            print(
                f"   {name} {algo}: compile {r.compile_seconds:.1f}s, curve "
                + ", ".join(
                    f"it {c['iteration']} ({c['seconds']:.1f}s): {c['exploitability']:.4g}"
                    for c in r.curve
                ),
                file=sys.stderr,
                flush=True,
            )
            out.setdefault("learning", []).append(
                dict(
                    game=name,
                    algo=algo,
                    game_params=params,
                    compile_seconds=r.compile_seconds,
                    train_seconds=r.train_seconds,
                    curve=r.curve,
                    uniform_exploitability=float(uni.exploitability),
                )
            )
        for algo, r in runs.items():
            c0, c1 = r.curve[0], r.curve[-1]
            cells = [
                name,
                algo,
                f"{float(uni.exploitability):.4g}",
                f"{c0['exploitability']:.4g}",
                f"{c1['exploitability']:.4g}",
                c1["iteration"],
                f"{r.train_seconds:.1f}",
                f"{c1['exploitability'] / float(uni.exploitability):.3f}",
            ]
            for ref in ("spg", "rspg"):
                cells.append(
                    f"{_best_within(runs[ref].curve, r.train_seconds):.4g}" if ref in runs else "-"
                )
            rows.append(cells)
    print_table(
        [
            "game",
            "algo",
            "uniform",
            "start",
            "final",
            "iters",
            "train s",
            "final/uniform",
            "best SPG in same s",
            "best RSPG in same s",
        ],
        rows,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sections", default="rollout,learning")
    ap.add_argument("--games", default="linear_quadratic,beach_bar_1d,macro")
    ap.add_argument("--algos", default="spg,rspg,ippo,rippo,m_omd")
    ap.add_argument("--agents", default="1000,10000,100000")
    ap.add_argument("--rollout-envs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=40, help="RL outer iterations")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--hsm-iterations", type=int, default=200, help="SPG/RSPG iterations")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    games = [g for g in args.games.split(",") if g]
    out: dict = {"device": str(jax.devices()[0]), "jax": jax.__version__}
    sections = args.sections.split(",")
    if "rollout" in sections:
        rollout(
            games, [int(n) for n in args.agents.split(",")], args.rollout_envs, args.repeats, out
        )
    if "learning" in sections:
        learning(
            games,
            args.algos.split(","),
            args.iterations,
            args.eval_every,
            args.hsm_iterations,
            out,
            args.seed,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=float)


if __name__ == "__main__":
    main()
