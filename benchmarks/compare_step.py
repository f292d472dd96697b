"""One RSPG training step of mfax and of the published MFAX code on the SAME batch and the
SAME initial parameters, compared piece by piece (beach bar).

1. ``_published_step.py`` (published python) builds the published learner from
   ``PRNGKey(seed)``, captures the gradient its own ``_train_step`` computes, replays
   its rollout with the same keys (batch: bar locations, common noise, observations,
   mean fields, probabilities, rewards, loss) and takes the real optimiser steps;
2. here the published initial parameters are loaded into mfax's network
   (`cross_evaluate.convert`) and mfax's own pieces (game observation, kernel,
   push-forward, reward, network, `expected_return`, the trainer's optimiser) are run
   on the published batch, forcing the bar location and the common-noise path to the
   published ones.  The forced replay is first checked against `mfax.dynamics.rollout_fn`
   on an mfax batch (it must give the same loss).

Printed: max abs differences of observations, mean fields, probabilities, rewards; the
loss; the gradient (global norm, per-leaf relative difference); the parameters and the
Adam moments after one step; the learning rate per step.

Usage::

    python benchmarks/compare_step.py --published-python /tmp/pubvenv/bin/python \
        --published-repo /tmp/published-mfax --seed 0 --out /tmp/compare-step [--reuse]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mfax
from mfax.dynamics import Trajectory, push_forward, rollout_fn
from mfax.evaluation import evaluate_fn, expected_return
from mfax.networks import init_params, network_policy
from mfax.training import TrainConfig, make_train

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cross_evaluate import check_tree, convert, published_config  # noqa: E402


def _sub(flat: dict, prefix: str) -> dict:
    return {k[len(prefix) + 1 :]: v for k, v in flat.items() if k.startswith(prefix + "/")}


def forced_rollout(game, policy, bar, z):
    """mfax's rollout step by step with the bar location ``bar[E]`` and the common-noise
    path ``z[T, E]`` given (instead of drawn): ``params -> Trajectory``."""
    from mfax.games.beach_bar import BarAggregate

    T, E = z.shape
    bar = jnp.asarray(bar, jnp.int32)
    z = jnp.asarray(z, jnp.float32)
    z_next = jnp.concatenate([z[1:], z[-1:]], 0)

    def run(params):
        mu = jnp.where(
            jnp.arange(game.num_states)[None] == bar[:, None], 0.0, 1.0 / (game.num_states - 1)
        ).astype(jnp.float32)
        carry = jax.vmap(lambda _: policy.initial_carry())(jnp.arange(E))

        def step(state, xs):
            mu, carry = state
            t, zt, zn = xs
            agg = BarAggregate(t=jnp.full((E,), t, jnp.int32), z=zt, bar=bar)
            agg_next = BarAggregate(t=agg.t + 1, z=zn, bar=bar)
            obs = jax.vmap(game.observation)(agg, mu)
            raw = jax.vmap(game.raw_observation)(agg, mu)
            probs, carry = jax.vmap(policy.apply, (None, 0, 0, 0))(params, carry, obs, agg.t)
            idx, prob = jax.vmap(game.kernel)(agg, mu)
            mu_next = push_forward(mu, jax.lax.stop_gradient(probs), idx, prob)
            reward = jax.vmap(game.reward)(agg, mu, agg_next, mu_next)
            return (mu_next, carry), (mu, obs, raw, zt, agg, probs, reward)

        (mu_f, _), rec = jax.lax.scan(step, (mu, carry), (jnp.arange(T), z, z_next))
        return Trajectory(
            mu=rec[0],
            mu_final=mu_f,
            obs=rec[1],
            raw_obs=rec[2],
            common_noise=rec[3],
            aggregate=rec[4],
            policy=rec[5],
            reward=rec[6],
        )

    return run


def _maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def _tree_report(name, ours, theirs):
    """Per-leaf max |diff| / max |published| and the worst leaf."""
    ol = {
        jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(ours)
    }
    tl = {
        jax.tree_util.keystr(k): np.asarray(v)
        for k, v in jax.tree_util.tree_leaves_with_path(theirs)
    }
    assert ol.keys() == tl.keys(), (ol.keys(), tl.keys())
    rel = {k: _maxdiff(ol[k], tl[k]) / max(float(np.max(np.abs(tl[k]))), 1e-30) for k in ol}
    worst = max(rel, key=rel.get)
    print(f"  {name}: max relative leaf difference {rel[worst]:.2e} (at {worst})", flush=True)
    return rel


def run_forced(a, game, policy, opt, data, gamma, report):
    """``a.run`` mfax iterations on the published batches from the published initial
    parameters; final parameters and exploitability against the published run's."""
    bars, zs = data["run/bar"], data["run/z"]
    params = convert(_sub(data, "init"))
    opt_state = opt.init(params)

    @jax.jit
    def step(params, opt_state, bar, z):
        forced = forced_rollout(game, policy, bar, z)
        loss, grads = jax.value_and_grad(lambda q: -expected_return(game, forced(q), gamma))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    for i in range(bars.shape[0]):
        params, opt_state, loss = step(params, opt_state, bars[i], zs[i])
    pub = convert(_sub(data, "run/params"))
    rel = _tree_report(
        f"parameters after {bars.shape[0]} iterations on the published batches", params, pub
    )
    ev = jax.jit(evaluate_fn(game, policy, a.eval_envs, gamma))
    rows = {}
    for name, p in (
        ("mfax (forced batches)", params),
        ("published", pub),
        ("initial", convert(_sub(data, "init"))),
    ):
        vals = [float(ev(p, jax.random.key(k)).exploitability) for k in range(3)]
        rows[name] = vals
        print(
            f"  exploitability, mfax evaluator, {a.eval_envs} envs x keys 0-2: {name}: "
            f"{np.mean(vals):.3f} {[round(v, 3) for v in vals]}",
            flush=True,
        )
    report["run"] = dict(
        iterations=int(bars.shape[0]), params_rel=max(rel.values()), exploitability=rows
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--published-python", required=True)
    ap.add_argument("--published-repo", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-envs", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--out", default="/tmp/mfax-compare-step")
    ap.add_argument(
        "--run",
        type=int,
        default=0,
        help="also train RUN iterations in mfax on the published script's batches "
        "(bar locations and noise paths forced) from its initial parameters, "
        "and compare the final parameters and exploitability",
    )
    ap.add_argument("--eval-envs", type=int, default=1024)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    out = Path(a.out) / f"s{a.seed}"
    if not (a.reuse and (out / "step.npz").is_file()):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.setdefault("JAX_PLATFORMS", "cpu")
        subprocess.run(
            [
                a.published_python,
                str(HERE / "_published_step.py"),
                "--repo",
                a.published_repo,
                "--out",
                str(out),
                "--seed",
                str(a.seed),
                "--num-envs",
                str(a.num_envs),
                "--lr",
                repr(a.lr),
                "--iterations",
                str(a.iterations),
                "--steps",
                str(a.steps),
                "--run",
                str(a.run),
            ],
            check=True,
            env=env,
        )
    info = json.loads((out / "step.json").read_text())
    data = dict(np.load(out / "step.npz"))
    game = mfax.make_game("beach_bar_1d")
    gamma = game.default_discount
    cfg = published_config(True)
    policy = network_policy(cfg, game)
    params = convert(_sub(data, "init"))
    check_tree(params, init_params(cfg, game, jax.random.PRNGKey(0)))
    report: dict = dict(seed=a.seed, steps=[])

    # 0) the forced replay reproduces mfax's own rollout on an mfax batch
    run = jax.jit(rollout_fn(game, policy, a.num_envs))
    traj = run(params, jax.random.key(123))
    forced = forced_rollout(game, policy, traj.aggregate.bar[0], traj.aggregate.z)
    loss_run = float(-expected_return(game, traj, gamma))
    loss_forced = float(-expected_return(game, jax.jit(forced)(params), gamma))
    print(
        f"forced replay vs mfax rollout_fn (mfax batch): loss {loss_forced:.6f} vs {loss_run:.6f}",
        flush=True,
    )
    lo, hi = game.params.bar_range()
    print(
        f"bar locations: mfax draws uniform on {lo}..{hi}; mfax batch {int(traj.aggregate.bar.min())}"
        f"..{int(traj.aggregate.bar.max())}; published batch {int(data['step0/bar'].min())}.."
        f"{int(data['step0/bar'].max())}; closed at T: mfax {float(1 - traj.aggregate.z[-1].mean()):.2f}, "
        f"published {float(1 - data['step0/z'][-1].mean()):.2f}; the noise changes: published at t = "
        f"{sorted(set(np.nonzero(np.diff(data['step0/z'], axis=0))[0] + 1))}, mfax z at t = "
        f"{sorted(set(np.nonzero(np.diff(np.asarray(traj.aggregate.z), axis=0))[0] + 1))}",
        flush=True,
    )
    report["forced_vs_rollout"] = [loss_forced, loss_run]

    # the trainer's optimiser (mfax.training.spg._make_train: clip, then Adam with the
    # linearly annealed learning rate), built from the TrainConfig the quality runs use
    tc = TrainConfig(
        game="beach_bar_1d",
        algo="rspg",
        lr=a.lr,
        num_iterations=a.iterations,
        eval_every=a.iterations,
        num_envs=a.num_envs,
    )
    schedule = optax.linear_schedule(tc.lr, tc.lr * tc.lr_end_fraction, tc.num_iterations)
    opt = optax.chain(optax.clip_by_global_norm(tc.max_grad_norm), optax.adam(schedule))
    tr = make_train(tc)
    st = tr.init(jax.random.key(0))
    same_struct = jax.tree_util.tree_structure(st.opt_state) == jax.tree_util.tree_structure(
        opt.init(st.params)
    )
    print(
        f"optimiser state structure equals the trainer's: {same_struct}; schedule "
        f"max |mfax - published| over {a.iterations + 1} steps: "
        f"{max(abs(float(schedule(i)) - v) for i, v in enumerate(info['schedule'])):.1e}",
        flush=True,
    )
    opt_state = opt.init(params)
    cur = params
    for k in range(a.steps):
        p = f"step{k}"
        forced = jax.jit(forced_rollout(game, policy, data[f"{p}/bar"], data[f"{p}/z"]))
        tj = forced(cur)
        diffs = dict(
            obs=_maxdiff(tj.obs, data[f"{p}/obs"]),
            mu=_maxdiff(tj.mu, data[f"{p}/mu"]),
            probs=_maxdiff(tj.policy, data[f"{p}/probs"]),
            reward=_maxdiff(tj.reward, data[f"{p}/reward"]),
        )

        def loss_fn(q, forced=forced):
            return -expected_return(game, forced(q), gamma)

        loss, grads = jax.jit(jax.value_and_grad(loss_fn))(cur)
        pub_grads = convert(_sub(data, f"{p}/grad"))
        gn, pgn = float(optax.global_norm(grads)), info["steps"][k]["grad_global_norm"]
        print(
            f"step {k} (same batch, same parameters): max |diff| obs {diffs['obs']:.1e}, "
            f"mu {diffs['mu']:.1e}, probs {diffs['probs']:.1e}, reward {diffs['reward']:.1e}; "
            f"loss mfax {float(loss):.6f} / published {info['steps'][k]['loss']:.6f}; "
            f"|grad| {gn:.6f} / {pgn:.6f}",
            flush=True,
        )
        grel = _tree_report("gradient", grads, pub_grads)
        updates, opt_state = opt.update(grads, opt_state, cur)
        cur = optax.apply_updates(cur, updates)
        prel = _tree_report("parameters after the step", cur, convert(_sub(data, f"{p}/params")))
        mrel = _tree_report(
            "Adam first moment", opt_state[1][0].mu, convert(_sub(data, f"{p}/adam_mu"))
        )
        nrel = _tree_report(
            "Adam second moment", opt_state[1][0].nu, convert(_sub(data, f"{p}/adam_nu"))
        )
        print(
            f"  learning rate: mfax {float(schedule(k)):.4e} / published "
            f"{info['steps'][k]['lr']:.4e}",
            flush=True,
        )
        report["steps"].append(
            dict(
                diffs=diffs,
                loss=float(loss),
                pub_loss=info["steps"][k]["loss"],
                grad_norm=gn,
                pub_grad_norm=pgn,
                grad_rel=max(grel.values()),
                params_rel=max(prel.values()),
                mu_rel=max(mrel.values()),
                nu_rel=max(nrel.values()),
            )
        )
        # continue from the published parameters (so that each step compares one step)
        cur = convert(_sub(data, f"{p}/params"))
    if a.run:
        run_forced(a, game, policy, opt, data, gamma, report)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
