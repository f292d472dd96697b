"""One RSPG (or, ``--algo spg``, SPG) training step of mfax and of the published MFAX code on
the SAME batch and the SAME initial parameters, compared piece by piece; optionally whole
runs on the published batches (``--game beach_bar_1d`` or ``linear_quadratic``).

``--algo`` (default ``rspg``) picks the published script (``rspg.py``: the recurrent
network; ``spg.py``: the feed-forward ``MeanFieldPolicy``) and mfax's network
(`cross_evaluate.published_config`, recurrent or not; the same parameter mapping,
`cross_evaluate.convert`) and TrainConfig ``algo``.

1. ``_published_step.py`` (published python) builds the published learner from
   ``PRNGKey(seed)``, captures the gradient its own ``_train_step`` computes, replays
   its rollout with the same keys (batch: common-noise values, observations, mean
   fields, probabilities, rewards, loss) and takes the real optimiser steps;
2. here the published initial parameters are loaded into mfax's network
   (`cross_evaluate.convert`) and mfax's own pieces (game observation, kernel,
   push-forward, reward, network, `expected_return`, the trainer's optimiser) are run
   on the published batch: `mfax.noise_tree.paths_rollout_fn` with the common noise of
   every environment set to the published values (beach bar: bar location and closure
   coin; linear-quadratic: the sign z).  The forced rollout is first checked against
   `mfax.dynamics.rollout_fn` on an mfax batch (it must give the same loss).

Printed: max abs differences of observations, mean fields, probabilities, rewards; the
loss; the gradient (global norm, per-leaf relative difference); the parameters and the
Adam moments after one step; the learning rate per step.

``--run N`` replays the published script's N iterations (its key chain, evaluation splits
every ``--eval-every`` included) and trains mfax on the same batches; ``--init`` and
``--batches`` choose, for that mfax run, the initial parameters and the batches:
``published`` (those of published seed ``--seed``) or ``mfax:K`` (those mfax's trainer
draws for seed K: ``make_train(...).init(jax.random.key(K))`` and its key chain).  With
``--init mfax:K`` the published learner is also run from mfax's initial parameters, on
its own batches.  Every final policy is scored by mfax's evaluator: exactly over the
common noise (``--exact``, `mfax.evaluate_policy(noise="exact")`) and/or on
``--eval-envs`` sampled environments x keys 0-2.

Usage::

    python benchmarks/compare_step.py --published-python /tmp/pubvenv/bin/python \
        --published-repo /tmp/published-mfax --seed 0 --out /tmp/compare-step [--reuse]
    python benchmarks/compare_step.py ... --game linear_quadratic --seed 2 --steps 1 \
        --run 400 --eval-every 200 --exact --eval-envs 0 [--init mfax:2] [--batches mfax:2]
    python benchmarks/compare_step.py ... --algo spg --game beach_bar_1d --seed 0 --steps 2 \
        --run 40
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
from mfax.dynamics import rollout_fn
from mfax.evaluation import evaluate_fn, expected_return
from mfax.networks import init_params, network_policy
from mfax.noise_tree import paths_rollout_fn
from mfax.training import TrainConfig, make_train

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cross_evaluate import check_tree, convert, published_config, to_published  # noqa: E402
from published import PUBLISHED_GAMES  # noqa: E402


def _sub(flat: dict, prefix: str) -> dict:
    return {k[len(prefix) + 1 :]: v for k, v in flat.items() if k.startswith(prefix + "/")}


def forced_rollout(game, policy, values):
    """mfax's push-forward rollout of ``E`` environments whose common noise is given
    (``values``: field -> ``[E]``, e.g. the published batch's) instead of drawn:
    ``params -> Trajectory``."""
    values = {d.field: jnp.asarray(values[d.field], d.dtype) for d in game.noise.draws}
    run = paths_rollout_fn(game, policy, int(next(iter(values.values())).shape[0]))
    return lambda params: run(params, values)


def noise_of(game, traj):
    """The common-noise values of a trajectory's environments (field -> ``[E]``, read at
    the last time step, where every draw has been made)."""
    return {d.field: getattr(traj.aggregate, d.field)[-1] for d in game.noise.draws}


def _noise_at(game, data, prefix):
    return {d.field: data[f"{prefix}/noise/{d.field}"] for d in game.noise.draws}


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


def mfax_config(a) -> TrainConfig:
    """The TrainConfig of mfax's run on the same settings (the trainer's optimiser and
    initialisation are rebuilt from it)."""
    return TrainConfig(
        game=a.game,
        algo=a.algo,
        lr=a.lr,
        num_iterations=a.iterations,
        eval_every=a.eval_every or a.iterations,
        num_envs=a.num_envs,
        ent_coef=0.0,  # the published learner has no entropy bonus
    )


def mfax_draws(a, game, policy, params, seed, n):
    """The common-noise values of mfax's trainer for ``seed``, iterations ``0..n-1``
    (`mfax.training.spg`: ``k_train`` from ``jax.random.key(seed)``, one split per
    iteration, the rollout key to `rollout_fn`): field -> ``[n, E]``."""
    run = jax.jit(rollout_fn(game, policy, a.num_envs))
    key = jax.random.split(jax.random.key(seed), 3)[1]
    out: dict = {d.field: [] for d in game.noise.draws}
    for _ in range(n):
        key, k_roll = jax.random.split(key)
        for f, v in noise_of(game, run(params, k_roll)).items():
            out[f].append(np.asarray(v))
    return {f: np.stack(v) for f, v in out.items()}


def _source(spec):
    """``published`` -> (``published``, None); ``mfax:K`` -> (``mfax``, K)."""
    if spec == "published":
        return "published", None
    side, _, k = spec.partition(":")
    if side != "mfax" or not k.isdigit():
        raise SystemExit(f"expected 'published' or 'mfax:K', got {spec!r}")
    return "mfax", int(k)


def score(a, game, cfg, gamma, params):
    """mfax's evaluator: exact over the common noise and/or sampled environments."""
    policy = network_policy(cfg, game, params)
    res = {}
    if a.exact:
        r = mfax.evaluate_policy(game, policy, jax.random.key(0), gamma=gamma, noise="exact")
        res["exact"] = float(r.exploitability)
    if a.eval_envs:
        ev = jax.jit(evaluate_fn(game, network_policy(cfg, game), a.eval_envs, gamma))
        res["sampled"] = [float(ev(params, jax.random.key(k)).exploitability) for k in range(3)]
    return res


def _fmt(res):
    parts = []
    if "exact" in res:
        parts.append(f"exact {res['exact']:.3f}")
    if "sampled" in res:
        v = res["sampled"]
        parts.append(f"{len(v)} x sampled mean {np.mean(v):.3f} {[round(x, 3) for x in v]}")
    return "; ".join(parts)


def run_forced(a, game, cfg, policy, opt, data, gamma, report):
    """``a.run`` mfax iterations on the chosen batches from the chosen initial parameters;
    final parameters and exploitability against the published run's."""
    init_side, init_k = _source(a.init)
    batch_side, batch_k = _source(a.batches)
    pub_init = convert(_sub(data, "init"))
    init = (
        pub_init
        if init_side == "published"
        else make_train(mfax_config(a)).init(jax.random.key(init_k)).params
    )
    check_tree(init, pub_init)
    if a.perturb:  # a rounding-size change of the initial parameters: how chaotic is the run?
        leaves, tree = jax.tree_util.tree_flatten(init)
        keys = jax.random.split(jax.random.key(a.perturb_key), len(leaves))
        init = jax.tree_util.tree_unflatten(
            tree,
            [x * (1 + a.perturb * jax.random.normal(k, x.shape)) for x, k in zip(leaves, keys)],
        )
    if batch_side == "published":
        noise = _noise_at(game, data, "run")
    else:
        noise = mfax_draws(a, game, policy, init, batch_k, a.run)
    n = next(iter(noise.values())).shape[0]
    E = next(iter(noise.values())).shape[1]
    run = paths_rollout_fn(game, policy, E)
    fields = [d.field for d in game.noise.draws]

    @jax.jit
    def step(params, opt_state, values):
        values = {d.field: values[d.field].astype(d.dtype) for d in game.noise.draws}
        loss, grads = jax.value_and_grad(lambda q: -expected_return(run(q, values), gamma))(params)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params, opt_state, curve = init, opt.init(init), []
    for i in range(n):
        params, opt_state, _ = step(
            params, opt_state, {f: jnp.asarray(noise[f][i]) for f in fields}
        )
        if a.curve_every and (i + 1) % a.curve_every == 0 and i + 1 < n:
            curve.append((i + 1, score(a, game, cfg, gamma, params)))
            print(f"  mfax, iteration {i + 1}: {_fmt(curve[-1][1])}", flush=True)
    label = f"mfax learner, init {a.init}, batches {a.batches}"
    if a.perturb:
        label += f", init x (1 + {a.perturb:g} N(0, 1)) (key {a.perturb_key})"
    rows = {label: score(a, game, cfg, gamma, params)}
    pub = convert(_sub(data, "run/params"))
    if init_side == "published" and batch_side == "published":
        rel = _tree_report(f"parameters after {n} iterations on the published batches", params, pub)
        report["params_rel"] = max(rel.values())
    rows[f"published learner, init published:{a.seed}, batches published:{a.seed}"] = score(
        a, game, cfg, gamma, pub
    )
    if init_side == "mfax":
        other = convert(_sub(data, "reverse/params"))
        rows[f"published learner, init {a.init}, batches published:{a.seed}"] = score(
            a, game, cfg, gamma, other
        )
    rows[f"initial, {a.init}"] = score(a, game, cfg, gamma, init)
    for name, res in rows.items():
        print(f"  after {n} iterations: {name}: {_fmt(res)}", flush=True)
    report["run"] = dict(
        iterations=n,
        init=a.init,
        batches=a.batches,
        perturb=[a.perturb, a.perturb_key],
        exploitability=rows,
        curve=curve,
        batch_noise_mean={f: float(np.mean(noise[f])) for f in fields},
    )


def published_step(a, out, extra=()):
    """Run ``_published_step.py`` with the published python (its own environment)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("JAX_PLATFORMS", "cpu")
    task, state_type, gamma = PUBLISHED_GAMES[a.game]
    cmd = [a.published_python, str(HERE / "_published_step.py"), "--repo", a.published_repo]
    cmd += ["--algo", a.algo]
    cmd += ["--out", str(out), "--task", task, "--state-type", state_type]
    cmd += ["--gamma", str(gamma), "--seed", str(a.seed), "--num-envs", str(a.num_envs)]
    cmd += ["--lr", repr(a.lr), "--iterations", str(a.iterations), "--steps", str(a.steps)]
    cmd += ["--run", str(a.run), "--eval-every", str(a.eval_every or a.run or 1), *extra]
    subprocess.run(cmd, check=True, env=env)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--published-python", required=True)
    ap.add_argument("--published-repo", required=True)
    ap.add_argument(
        "--algo",
        default="rspg",
        choices=["rspg", "spg"],
        help="the published script and mfax's network: rspg (recurrent) or spg (feed-forward)",
    )
    ap.add_argument("--game", default="beach_bar_1d", choices=["beach_bar_1d", "linear_quadratic"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--num-envs", type=int, default=None, help="128 (beach bar), 8 (LQ)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument(
        "--iterations", type=int, default=None, help="of the lr schedule: 40 (beach bar), 400 (LQ)"
    )
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--out", default="/tmp/mfax-compare-step")
    ap.add_argument(
        "--run",
        type=int,
        default=0,
        help="also train RUN iterations in mfax on the published script's batches "
        "(common noise forced) from its initial parameters, and compare the final "
        "parameters and exploitability",
    )
    ap.add_argument(
        "--eval-every",
        type=int,
        default=None,
        help="the published script's evaluation frequency (its key chain splits once per "
        "evaluation); default RUN",
    )
    ap.add_argument("--init", default="published", help="published or mfax:K (mfax's seed K)")
    ap.add_argument("--batches", default="published", help="published or mfax:K")
    ap.add_argument(
        "--perturb",
        type=float,
        default=0.0,
        help="multiply mfax's initial parameters by 1 + PERTURB N(0, 1) (a control for how "
        "far float rounding alone moves a run)",
    )
    ap.add_argument("--perturb-key", type=int, default=0)
    ap.add_argument("--exact", action="store_true", help="also score exactly over the noise")
    ap.add_argument("--eval-envs", type=int, default=1024, help="0: no sampled evaluation")
    ap.add_argument("--curve-every", type=int, default=0)
    ap.add_argument("--reuse", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    lq = a.game == "linear_quadratic"
    a.num_envs = a.num_envs or (8 if lq else 128)
    a.iterations = a.iterations or (400 if lq else 40)
    out = Path(a.out) / (
        ("" if a.algo == "rspg" else f"{a.algo}_")
        + f"{a.game}_s{a.seed}_n{a.num_envs}_it{a.iterations}_run{a.run}_ev{a.eval_every or a.run}"
    )
    if not (a.reuse and (out / "step.npz").is_file()):
        published_step(a, out)
    info = json.loads((out / "step.json").read_text())
    data = dict(np.load(out / "step.npz"))
    game = mfax.make_game(a.game)
    gamma = game.default_discount
    if info.get("algo", "rspg") != a.algo:
        raise SystemExit(f"{out}: exported for algo {info.get('algo', 'rspg')!r}, not {a.algo!r}")
    cfg = published_config(a.algo == "rspg")
    policy = network_policy(cfg, game)
    params = convert(_sub(data, "init"))
    check_tree(params, init_params(cfg, game, jax.random.PRNGKey(0)))
    report: dict = dict(algo=a.algo, game=a.game, seed=a.seed, steps=[])
    if a.run and a.init != "published":  # the published learner from mfax's initial parameters
        init = make_train(mfax_config(a)).init(jax.random.key(_source(a.init)[1])).params
        rev = out.with_name(out.name + f"_init-{a.init.replace(':', '')}")
        if not (a.reuse and (rev / "step.npz").is_file()):
            rev.mkdir(parents=True, exist_ok=True)
            np.savez(rev / "init.npz", **to_published(init, list(_sub(data, "init"))))
            published_step(a, rev, ["--init-npz", str(rev / "init.npz"), "--steps", "0"])
        for k, v in np.load(rev / "step.npz").items():
            if k.startswith("run/params/"):
                data["reverse/params/" + k[len("run/params/") :]] = v

    # 0) the forced replay reproduces mfax's own rollout on an mfax batch
    run = jax.jit(rollout_fn(game, policy, a.num_envs))
    traj = run(params, jax.random.key(123))
    forced = forced_rollout(game, policy, noise_of(game, traj))
    loss_run = float(-expected_return(traj, gamma))
    loss_forced = float(-expected_return(jax.jit(forced)(params), gamma))
    print(
        f"forced replay vs mfax rollout_fn (mfax batch): loss {loss_forced:.6f} vs {loss_run:.6f}",
        flush=True,
    )
    if a.steps:
        mine, theirs = noise_of(game, traj), _noise_at(game, data, "step0")
        print(
            "common noise of one batch, mean per field: "
            + ", ".join(
                f"{f}: mfax {float(np.mean(mine[f])):.3f}, published {float(np.mean(theirs[f])):.3f}"
                for f in mine
            )
            + "; the published noise path changes at t = "
            f"{sorted(set(np.nonzero(np.diff(data['step0/z'], axis=0))[0] + 1))}, mfax's at t = "
            f"{sorted(set(np.nonzero(np.diff(np.asarray(traj.aggregate.z), axis=0))[0] + 1))}",
            flush=True,
        )
    report["forced_vs_rollout"] = [loss_forced, loss_run]

    # the trainer's optimiser (mfax.training.spg._make_train: clip, then Adam with the
    # linearly annealed learning rate), built from the TrainConfig the quality runs use
    tc = mfax_config(a)
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
        forced = jax.jit(forced_rollout(game, policy, _noise_at(game, data, p)))
        tj = forced(cur)
        diffs = dict(
            obs=_maxdiff(tj.obs, data[f"{p}/obs"]),
            mu=_maxdiff(tj.mu, data[f"{p}/mu"]),
            probs=_maxdiff(tj.policy, data[f"{p}/probs"]),
            reward=_maxdiff(tj.reward, data[f"{p}/reward"]),
        )

        def loss_fn(q, forced=forced):
            return -expected_return(forced(q), gamma)

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
        run_forced(a, game, cfg, policy, opt, data, gamma, report)
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
