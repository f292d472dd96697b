"""How often SPG / RSPG stalls, per side: mfax's own seeds against the published code's seeds,
every final policy scored by the same evaluator (mfax's, exactly over the common noise).

- mfax: `mfax.multiseed.train_seeds` (the trainer itself, seed ``s`` from
  ``jax.random.key(s)``) on linear-quadratic with the published settings (RSPG, lr
  1e-3 annealed to 10%, 8 environments, published network layout), then
  `mfax.evaluate_policy(noise="exact")` on each final policy;
- published: the ``--json`` reports of ``compare_step.py --game linear_quadratic --run N
  --exact`` (RSPG: the published script's run replayed bit for bit from its own key chain,
  its final parameters converted into mfax's network, and mfax trained on the same batches
  from the same initial parameters), or of ``cross_evaluate.py`` (SPG or RSPG: the
  published script run unchanged; the mean over z = +-1 of mfax's evaluator, its
  ``exact_expectation``), one per published seed.

Printed: per seed final exploitability, median and mean per side, stall counts
(exploitability above ``--stall``), Fisher's exact test on the stall counts and an exact
permutation test (all splits of the pooled values) on the difference of means and of
medians.

Usage::

    python benchmarks/seed_stalls.py --mfax-seeds 0-7 --json-glob '/tmp/lqcmp/json/s*_pub_pub.json'
    python benchmarks/seed_stalls.py --algo spg --iterations 1000 --mfax-seeds 0-4 \
        --json-glob '/tmp/spgxe/json/spg_s*.json'
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import math
import time
from pathlib import Path

import jax
import numpy as np
from _common import add_ent_coef, ent_kwargs

import mfax
from mfax.multiseed import train_seeds
from mfax.training import TrainConfig


def fisher_two_sided(a: int, n1: int, b: int, n2: int) -> float:
    """Fisher's exact test, two-sided: ``a`` of ``n1`` against ``b`` of ``n2``; the
    p-value sums the hypergeometric probabilities no larger than the observed one."""
    k, n = a + b, n1 + n2

    def prob(x):
        return math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n, k)

    p0 = prob(a)
    lo, hi = max(0, k - n2), min(k, n1)
    return min(1.0, sum(prob(x) for x in range(lo, hi + 1) if prob(x) <= p0 * (1 + 1e-9)))


def permutation_p(x, y, stat, max_exact: int = 200_000, draws: int = 100_000) -> float:
    """Two-sided permutation test of ``|stat(x) - stat(y)|``: exact over all splits when
    there are at most ``max_exact`` of them, else over ``draws`` random splits (fixed
    seed; the Monte Carlo p-value counts the observed split, so it is never 0)."""
    pooled = np.concatenate([x, y])
    obs = abs(stat(x) - stat(y)) - 1e-9

    def hit(mask):
        return abs(stat(pooled[mask]) - stat(pooled[~mask])) >= obs

    if math.comb(pooled.size, len(x)) > max_exact:
        rng = np.random.default_rng(0)
        base = np.arange(pooled.size) < len(x)
        hits = sum(hit(rng.permutation(base)) for _ in range(draws))
        return (hits + 1) / (draws + 1)
    hits = total = 0
    for chosen in itertools.combinations(range(pooled.size), len(x)):
        mask = np.zeros(pooled.size, bool)
        mask[list(chosen)] = True
        total += 1
        hits += hit(mask)
    return hits / total


def _seeds(spec: str) -> list[int]:
    if "-" in spec:
        lo, hi = spec.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in spec.split(",")]


def mfax_side(a) -> dict[int, float]:
    config = TrainConfig(
        game="linear_quadratic",
        algo=a.algo,
        lr=a.lr,
        num_iterations=a.iterations,
        eval_every=a.eval_every,
        num_envs=a.num_envs,
        **ent_kwargs(a.ent_coef),
    )
    start = time.perf_counter()
    results = train_seeds(config, _seeds(a.mfax_seeds), progress=False)
    print(f"mfax: {len(results)} seeds trained in {time.perf_counter() - start:.0f} s", flush=True)
    game = mfax.make_game("linear_quadratic")
    out = {}
    for r in results:
        ev = mfax.evaluate_policy(game, r.policy, jax.random.key(0), noise="exact")
        out[r.seed] = float(ev.exploitability)
        print(
            f"mfax seed {r.seed}: exact {out[r.seed]:.3f} (its own curve, "
            f"{config.resolved_eval_num_envs()} envs: "
            f"{[round(c['exploitability'], 1) for c in r.curve]})",
            flush=True,
        )
    return out


def published_side(patterns: str):
    """Per-seed values from the reports matching ``patterns`` (comma-separated globs)."""
    pub, forced = {}, {}
    paths = sorted({p for pattern in patterns.split(",") for p in glob.glob(pattern)})
    for path in paths:
        rep = json.loads(Path(path).read_text())
        if isinstance(rep, list):  # cross_evaluate.py: the published run, scored by mfax
            for r in rep:
                pub[r["seed"]] = r["exact_expectation"]["mfax"]
            continue
        run = rep["run"]
        if (
            run["init"] != "published"
            or run["batches"] != "published"
            or run.get("perturb", [0])[0]
        ):
            continue
        rows = run["exploitability"]
        seed = rep["seed"]
        pub[seed] = next(v["exact"] for k, v in rows.items() if k.startswith("published learner"))
        forced[seed] = next(v["exact"] for k, v in rows.items() if k.startswith("mfax learner"))
    return pub, forced


def _summary(name, vals: dict[int, float], stall: float) -> str:
    v = np.asarray(list(vals.values()))
    per = ", ".join(f"{s}: {x:.1f}" for s, x in sorted(vals.items()))
    return (
        f"{name:32s} n={v.size} median {np.median(v):7.1f} mean {v.mean():7.1f} "
        f"stalls (> {stall:g}) {int((v > stall).sum())}/{v.size} | {per}"
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mfax-seeds", default="0-7")
    ap.add_argument(
        "--json-glob",
        default=None,
        help="compare_step.py / cross_evaluate.py --json reports (comma-separated globs)",
    )
    ap.add_argument("--algo", default="rspg", choices=["rspg", "spg"])
    ap.add_argument("--lr", type=float, default=1e-3)
    add_ent_coef(ap)
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--num-envs", type=int, default=8)
    ap.add_argument("--stall", type=float, default=100.0)
    ap.add_argument(
        "--mfax-json",
        default=None,
        help="reuse / write mfax's per-seed values (reuse: several files, comma-separated)",
    )
    a = ap.parse_args(argv)
    saved = a.mfax_json.split(",") if a.mfax_json else []
    if saved and all(Path(f).is_file() for f in saved):
        ours = {int(k): v for f in saved for k, v in json.loads(Path(f).read_text()).items()}
    else:
        ours = mfax_side(a)
        if a.mfax_json:
            Path(a.mfax_json).write_text(json.dumps(ours, indent=1))
    sides = {"mfax (own seeds)": ours}
    if a.json_glob:
        pub, forced = published_side(a.json_glob)
        sides["published (own seeds)"] = pub
        if forced:
            sides["mfax on the published batches"] = forced
    for name, vals in sides.items():
        print(_summary(name, vals, a.stall), flush=True)
    if a.json_glob and sides["published (own seeds)"]:
        x = np.asarray(list(ours.values()))
        y = np.asarray(list(sides["published (own seeds)"].values()))
        sx, sy = int((x > a.stall).sum()), int((y > a.stall).sum())
        print(
            f"mfax vs published: stalls {sx}/{x.size} vs {sy}/{y.size}, Fisher exact "
            f"(two-sided) p = {fisher_two_sided(sx, x.size, sy, y.size):.3f}; permutation "
            f"test, difference of means p = {permutation_p(x, y, np.mean):.3f}, of medians "
            f"p = {permutation_p(x, y, np.median):.3f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
