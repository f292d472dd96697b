"""Where one macro training iteration goes: each piece jitted and timed on its own.

    python benchmarks/macro_pieces.py [--envs 8] [--repeats 3]

Prints a table: the whole iteration, the loss and its gradient, the rollout and
its parts (network forward, kernel, push-forward), the policy-value recursion and
its gradient, and the exploitability's recursion (docs/PERFORMANCE.md, "Where a
macro iteration goes"). Pieces repeated over time run in a `lax.scan` of the
game's horizon whose body depends on the carry, so XLA cannot hoist them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax

from mfax.dynamics import policy_step, rollout_fn
from mfax.evaluation import expected_return, policy_value
from mfax.networks import network_policy
from mfax.training import TrainConfig, make_train


def seconds(fn, *args, repeats: int) -> float:
    compiled = jax.jit(fn).lower(*args).compile()
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def over_time(horizon: int, body):
    """``body(mu, *rest) -> scalar`` run ``horizon`` times, each step depending on the last."""

    def run(mu, *rest):
        def step(c, _):
            return c + body(mu * (1 + c * 1e-30), *rest) * 1e-30, None

        return lax.scan(step, jnp.zeros((), jnp.float32), None, length=horizon)[0]

    return run


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    cfg = TrainConfig(game="macro", algo="spg", num_iterations=10, eval_every=1, num_envs=args.envs)
    trainer = make_train(cfg)
    game, gamma, E, T = trainer.game, trainer.gamma, args.envs, trainer.game.horizon
    state = jax.jit(trainer.init)(jax.random.key(0))
    policy = network_policy(trainer.network, game)
    run = rollout_fn(game, policy, E)
    key = jax.random.key(1)
    traj = jax.jit(run)(state.params, key)
    agg, mu = jax.tree_util.tree_map(lambda x: x[0], traj.aggregate), traj.mu[0]
    carry = jax.vmap(lambda _: policy.initial_carry())(jnp.arange(E))
    rows = jax.vmap(game.kernel_rows)(agg, mu)  # macro: factored (wealth rows, then income)
    pi = traj.policy[0]

    def value(p):
        return jnp.sum(traj.mu0 * policy_value(game, traj._replace(policy=p), gamma))

    pieces = [
        ("one training iteration", lambda s: trainer.iteration(s, None), (state,)),
        (
            "loss and gradient (value_and_grad)",
            jax.value_and_grad(lambda p, k: expected_return(run(p, k), gamma)),
            (state.params, key),
        ),
        ("rollout, forward", lambda p, k: run(p, k).mu_final.sum(), (state.params, key)),
        (
            "- network forward, T times",
            over_time(T, lambda m, p: policy_step(game, policy, p, agg, m, carry)[2].sum()),
            (mu, state.params),
        ),
        (
            "- kernel, T times",
            over_time(T, lambda m: sum(jnp.sum(x) for x in jax.vmap(game.kernel_rows)(agg, m))),
            (mu,),
        ),
        (
            "- push-forward, T times",
            over_time(T, lambda m: game.kernel_push(m, pi, rows).sum()),
            (mu,),
        ),
        ("policy-value recursion, forward", value, (traj.policy,)),
        ("its gradient in the probabilities", jax.grad(value), (traj.policy,)),
        (
            "expectation of 3 value arrays, T times",
            over_time(T, lambda m: game.kernel_expectation(jnp.stack([m, m, m]), rows).sum()),
            (mu,),
        ),
    ]
    print(
        f"macro SPG, S={game.num_states} A={game.num_actions} T={T}, {E} environments, "
        f"{jax.devices()[0].device_kind}; median of {args.repeats}"
    )
    print("| piece | seconds |\n|---|---|")
    for name, fn, fn_args in pieces:
        print(f"| {name} | {seconds(fn, *fn_args, repeats=args.repeats):.3f} |", flush=True)


if __name__ == "__main__":
    main()
