"""Core speed: one push-forward step, one policy-value recursion and one full
exploitability recursion (policy value + best response + gap, for gamma and
undiscounted) over the whole horizon, per game and number of environments.

Prints medians over repeats after compilation.  Usage:
    python benchmarks/core.py [--games linear_quadratic,beach_bar_1d,macro] [--envs 1,8,128] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax

import mfax
from mfax.dynamics import push_forward, rollout_fn
from mfax.evaluation import exploitability_of, policy_value
from mfax.policies import as_policy


def median_seconds(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_game(name: str, num_envs: int, repeats: int) -> dict:
    game = mfax.make_game(name)
    policy = as_policy(mfax.policies.random_policy(game, jax.random.PRNGKey(1)), game)
    traj = jax.jit(rollout_fn(game, policy, num_envs))(policy.params, jax.random.PRNGKey(0))
    agg = jax.tree_util.tree_map(lambda x: x[0], traj.aggregate)
    idx, prob = jax.vmap(game.kernel)(agg, traj.mu[0])
    gamma = game.default_discount
    step = jax.jit(push_forward)
    value = jax.jit(lambda tr: policy_value(game, tr, gamma))
    full = jax.jit(lambda tr: exploitability_of(game, tr, gamma).exploitability)
    return {
        "push-forward step": median_seconds(
            step, traj.mu[0], traj.policy[0], idx, prob, repeats=repeats
        ),
        "policy value (T steps)": median_seconds(value, traj, repeats=repeats),
        "exploitability (T steps)": median_seconds(full, traj, repeats=repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--games", default=",".join(mfax.list_games()))
    parser.add_argument("--envs", default="1,8,128")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, "
        f"jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"{jax.device_count()} device(s); medians of {args.repeats} runs after compilation"
    )
    header = f"{'game':<18}{'E':>5}{'push step (ms)':>17}{'policy value (ms)':>20}{'exploitability (ms)':>22}"
    print(header)
    print("-" * len(header))
    for name in args.games.split(","):
        for num_envs in (int(e) for e in args.envs.split(",")):
            r = bench_game(name, num_envs, args.repeats)
            print(
                f"{name:<18}{num_envs:>5}{1e3 * r['push-forward step']:>17.3f}"
                f"{1e3 * r['policy value (T steps)']:>20.2f}{1e3 * r['exploitability (T steps)']:>22.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
