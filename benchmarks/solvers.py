"""Tabular solvers: seconds per iteration and exploitability reached, per game and algorithm.

For each game and size, each algorithm runs ``--iterations`` iterations as one
compiled program (compiled ahead of time and timed separately, then run once):
seconds per iteration (steady state: run time / iterations, including the
exploitability computed at every iteration), the exploitability relative to the
uniform policy's after 1, 10, 100 and 1000 iterations, and the wall-clock time
until it first falls below 1e-2 and 1e-4 of it (iterations x seconds per
iteration; '-' if never).  Usage:

    python benchmarks/solvers.py [--games crowd_ring:100,crowd_ring:1000,beach_bar_1d:101]
        [--algos fp,omd,...] [--iterations 1000]

A game without a size (``susceptible_infected``, ``rock_paper_scissors``) is named alone;
``beach_bar_noise:S`` keeps the beach bar's common noise and is solved on its exact noise
tree (``solve_tabular(..., noise="exact")``; about ``S / 2`` times 2 paths, slow).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import numpy as np
from _common import print_table

import mfax
from mfax.noise_tree import enumerate_paths
from mfax.solvers import get_solver, list_solvers, solve_fn

#: the settings used for each algorithm (the defaults where none are listed)
SETTINGS = {
    "fp_damped": dict(damping=0.01),
    "omd": dict(learning_rate=1.0),
    "momd": dict(temperature=1.0, alpha=0.99),
    "boltzmann": dict(temperature=1.0),
    "boltzmann_damped": dict(temperature=0.01, damping=0.01),
    "bpi": dict(temperature=1.0),
    "prior_descent": dict(temperature=0.3),
}

#: extra rows: one vmapped call sweeping a setting (seconds per iteration are per value)
SWEEPS = {
    "omd": ("learning_rate", [0.3, 3.0, 10.0]),
    "prior_descent": ("temperature", [0.1, 1.0]),
}

#: extra sweeps on one game (its best settings differ from the others')
GAME_SWEEPS = {
    "susceptible_infected": {
        "fp_damped": ("damping", [0.1, 0.3, 0.5]),
        "boltzmann": ("temperature", [0.1, 0.3]),
    },
    "rock_paper_scissors": {"omd": ("learning_rate", [0.03, 0.1])},
}

#: a game per name, at a number of states S (None: the game's only size)
GAMES = {
    "crowd_ring": lambda S: mfax.make_game("crowd_ring", num_states=S),
    "beach_bar_1d": lambda S: mfax.make_game(
        "beach_bar_1d", num_states=S, common_noise=False, bar_location=S // 2, crowd_aversion=1.0
    ),
    # with its common noise (random bar, closure coin): solved on the noise tree
    "beach_bar_noise": lambda S: mfax.make_game("beach_bar_1d", num_states=S, crowd_aversion=1.0),
    "susceptible_infected": lambda S: mfax.make_game("susceptible_infected"),
    "rock_paper_scissors": lambda S: mfax.make_game("rock_paper_scissors"),
}


def run(game, algorithm: str, iterations: int, sweep=None) -> list[tuple[dict, dict]]:
    """-> one (settings, row) per value of the swept setting (one row without a sweep)."""
    solver = get_solver(algorithm)
    settings = {**{s.name: s.default for s in solver.settings}, **SETTINGS.get(algorithm, {})}
    static = {s.name: int(settings[s.name]) for s in solver.settings if s.integer}
    traced = {k: np.float32(v) for k, v in settings.items() if k not in static}
    # a game with (finite) common noise is solved on its exact noise tree
    paths = enumerate_paths(game) if game.has_random_reset else None
    solve = solve_fn(game, solver, iterations, game.default_discount, static, paths)
    n = 1
    if sweep:
        name, values = sweep
        traced[name], n = np.asarray(values, np.float32), len(values)
        axes = {k: (0 if k == name else None) for k in traced}
        fn = jax.jit(jax.vmap(solve, in_axes=(axes,)))
    else:
        fn = jax.jit(solve)
    start = time.perf_counter()
    compiled = fn.lower(traced).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    sol = jax.block_until_ready(compiled(traced))
    per_it = (time.perf_counter() - start) / iterations / n
    expl = np.asarray(sol.exploitability, dtype=float).reshape(n, -1)
    out = []
    for i in range(n):
        used = dict(SETTINGS.get(algorithm, {}))
        if sweep:
            used[sweep[0]] = sweep[1][i]
        out.append((used, _row(expl[i], compile_s, per_it, iterations)))
    return out


def _row(e, compile_s, per_it, iterations) -> dict:
    rel = e / e[0]

    def reach(threshold):
        hit = np.nonzero(rel <= threshold)[0]
        return f"{hit[0] * per_it:.3g}" if hit.size else "-"

    row = {"compile s": f"{compile_s:.1f}", "s/iter": f"{per_it:.2g}"}
    for k in (1, 10, 100, 1000):
        row[f"@{k}"] = f"{rel[k]:.1e}" if k <= iterations else ""
    row["t(1e-2) s"], row["t(1e-4) s"] = reach(1e-2), reach(1e-4)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--games",
        default="crowd_ring:100,crowd_ring:1000,beach_bar_1d:101,susceptible_infected,"
        "rock_paper_scissors",
    )
    parser.add_argument("--algos", default=",".join(list_solvers()))
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__} on {jax.default_backend()}, load average at start "
        f"{os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for spec in args.games.split(","):
        name, _, S = spec.partition(":")
        game = GAMES[name](int(S) if S else None)
        print(
            f"## {name}: S = {game.num_states}, A = {game.num_actions}, K = "
            f"{game.kernel_size}, T = {game.horizon}, gamma = {game.default_discount}"
            + (f", {game.noise.num_paths} noise paths" if game.has_random_reset else ""),
            flush=True,
        )
        rows = []
        for algo in args.algos.split(","):
            sweeps = [SWEEPS[algo]] if algo in SWEEPS else []
            if algo in GAME_SWEEPS.get(name, {}):
                sweeps.append(GAME_SWEEPS[name][algo])
            for sweep in [None] + sweeps:
                for used, row in run(game, algo, args.iterations, sweep):
                    settings = ", ".join(f"{k}={v:g}" for k, v in used.items())
                    rows.append(
                        [algo + (" (swept)" if sweep else ""), settings] + list(row.values())
                    )
                    print("  ", rows[-1], flush=True)
        print_table(["algorithm", "settings"] + list(row), rows)
    print(f"# load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
