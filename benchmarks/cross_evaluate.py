"""Cross-evaluation: one trained policy of the published MFAX code, scored by both evaluators.

1. trains with the published code (its own python and checkout; `published.run_published`
   with ``--save``), or reuses a saved agent;
2. runs ``_published_export.py`` with the published python: the published evaluator on
   8 and 256 environments (several keys), the parameters (``params.npz``) and probe
   inputs with the published probabilities (``probes.npz``);
3. here, in mfax: converts the parameters into mfax's network (its layout is the
   published one; `published_config`), checks that it gives the same probabilities on
   the probes, and scores it with `mfax.evaluate_policy` on the same numbers of
   environments and keys; on linear-quadratic, where each environment's score depends
   only on its common-noise draw z = +-1, it also compares the per-z values one to one
   and the exact expectation over z.

Usage::

    python benchmarks/cross_evaluate.py --published-python /tmp/pubvenv/bin/python \
        --published-repo /tmp/published-mfax --algos rspg,spg --iterations 400 \
        --workdir /tmp/xe [--reuse]
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

import mfax
from mfax.networks import NetworkConfig, init_params, network_policy

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from published import PUBLISHED_GAMES, run_published  # noqa: E402

#: published parameter path (without the "policy/" or "params/" prefix) -> mfax path
_POLICY = {
    "state_embedding": "state_embed",
    "obs_embedding": "obs_embed",
    "features/Dense_0": "first",
    "features/Dense_1": "hidden_1",
    "action_logits": "head",
}
_ENCODER = {"GRUCell_0": "gru", "Dense_0": "gru_out"}


def published_config(recurrent: bool) -> NetworkConfig:
    """The published network (``hidden_layer_sizes=(128, 128, 128)``: embeddings of 64, an
    MLP of 128, 128, GRU 128, relu) as an mfax `NetworkConfig`: mfax's layout is the
    published one, with ``hidden`` counting the MLP after the embeddings."""
    return NetworkConfig(
        recurrent=recurrent,
        state_input="index",
        embed_dim=64,
        gru_hidden=128,
        head="categorical",
        activation="relu",
        hidden=(128, 128),
    )


def _mfax_path(key: str) -> list[str]:
    """A flattened published parameter name -> its path in mfax's ``params``."""
    scope, rest = key.split("/", 1)
    if scope not in ("encoder", "policy", "params"):
        raise KeyError(f"unexpected published parameter {key!r}")
    table = _ENCODER if scope == "encoder" else _POLICY
    for src, dst in table.items():
        if rest.startswith(src + "/"):
            return [dst] + rest[len(src) + 1 :].split("/")
    raise KeyError(f"no mfax counterpart for published parameter {key!r}")


def convert(flat: dict[str, np.ndarray]) -> dict:
    """Flattened published parameters -> mfax ``{"params": {...}}``.

    The first layer's kernel is copied as is: the published network concatenates
    ``[state_embedding, obs_embedding]`` and mfax's `FirstLayer` reads its kernel rows
    state part first, then observation part."""
    tree: dict = {}
    for key, value in flat.items():
        path = _mfax_path(key)
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = jnp.asarray(value)
    return {"params": tree}


def to_published(params: dict, names) -> dict[str, np.ndarray]:
    """The inverse of `convert`: mfax ``params`` under the flattened published ``names``."""
    out = {}
    for key in names:
        node = params["params"]
        for p in _mfax_path(key):
            node = node[p]
        out[key] = np.asarray(node)
    return out


def check_tree(params, reference) -> None:
    """Same paths and shapes as a freshly initialised mfax network."""
    got = {jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(params)}
    want = {
        jax.tree_util.keystr(k): v.shape for k, v in jax.tree_util.tree_leaves_with_path(reference)
    }
    if got != want:
        raise ValueError(f"converted tree differs from mfax's:\n converted {got}\n mfax {want}")


def mfax_probe_probs(cfg, game, params, obs):
    """Step the mfax network over ``obs[P, T, d]`` from its initial carry: ``[P, T, S, A]``."""
    pol = network_policy(cfg, game, params)

    def one(seq):
        def step(carry, xs):
            o, t = xs
            probs, carry = pol.apply(params, carry, o, t)
            return carry, probs

        _, probs = jax.lax.scan(step, pol.initial_carry(), (seq, jnp.arange(seq.shape[0])))
        return probs

    return np.asarray(jax.jit(jax.vmap(one))(jnp.asarray(obs)))


def _stats(values):
    v = np.asarray(values, np.float64)
    return float(v.mean()), float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else 0.0


def cross_evaluate(algo, a, out):
    game_name = a.game
    task, state_type, gamma = PUBLISHED_GAMES[game_name]
    workdir = Path(a.workdir) / f"{game_name}_{algo}_lr{a.lr:g}_s{a.seed}_it{a.iterations}"
    workdir.mkdir(parents=True, exist_ok=True)
    agent = workdir / "runs" / task / f"hsm_{algo}" / "mf_agent_wrapper.pkl"
    run_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    if a.platform:
        run_env["JAX_PLATFORMS"] = a.platform
    record = dict(
        game=game_name,
        algo=algo,
        lr=a.lr,
        seed=a.seed,
        iterations=a.iterations,
        num_envs=a.num_envs,
    )
    curve_file = workdir / "curve.json"
    if not (a.reuse and agent.is_file()):
        res = run_published(
            a.published_python,
            a.published_repo,
            game_name,
            algo,
            a.lr,
            a.seed,
            a.iterations,
            a.eval_every,
            a.num_envs,
            env={"JAX_PLATFORMS": a.platform} if a.platform else None,
            workdir=str(workdir),
        )
        curve_file.write_text(
            json.dumps({k: res[k] for k in ("curve", "seconds", "train_seconds")})
        )
    if curve_file.is_file():
        record["training"] = json.loads(curve_file.read_text())
        print(
            f"[{algo}] published training curve: {record['training']['curve']} "
            f"({record['training']['seconds']:.0f} s wall-clock)",
            flush=True,
        )

    export = workdir / "export"
    subprocess.run(
        [
            a.published_python,
            str(HERE / "_published_export.py"),
            "--repo",
            a.published_repo,
            "--agent",
            str(agent),
            "--out",
            str(export),
            "--task",
            task,
            "--state-type",
            state_type,
            "--gamma",
            str(gamma),
            "--eval-envs",
            a.eval_envs,
            "--eval-keys",
            a.eval_keys,
        ],
        check=True,
        env=run_env,
    )
    info = json.loads((export / "published.json").read_text())
    flat = dict(np.load(export / "params.npz"))
    probes = np.load(export / "probes.npz")

    game = mfax.make_game(game_name)
    assert (game.num_states, game.num_actions, game.obs_dim) == (
        info["num_states"],
        info["num_actions"],
        info["obs_dim"],
    ), "game sizes differ"
    cfg = published_config(info["recurrent"])
    params = convert(flat)
    check_tree(params, init_params(cfg, game, jax.random.PRNGKey(0)))

    probs = mfax_probe_probs(cfg, game, params, probes["obs"])
    diff = float(np.abs(probs - probes["probs"]).max())
    n_roll = probes["rollout_probs"].shape[0]
    diff_roll = float(np.abs(probs[:n_roll] - probes["rollout_probs"]).max())
    record["probe_max_abs_diff"] = diff
    record["rollout_probe_max_abs_diff"] = diff_roll
    print(
        f"[{algo}] probabilities on {probes['obs'].shape[0]} probe sequences x "
        f"{probes['obs'].shape[1]} steps: max |mfax - published| = {diff:.2e} "
        f"(vs the published evaluator's own rollout: {diff_roll:.2e})",
        flush=True,
    )

    policy = network_policy(cfg, game, params)
    rows, by_noise, pub_by_noise = [], {}, {}
    for n in [int(x) for x in a.eval_envs.split(",")]:
        pub = [e for e in info["evaluations"] if e["num_envs"] == n]
        pub_vals = [e["exploitability"] for e in pub]
        pub_env = sum((e["per_env_exploitability"] for e in pub), [])
        ours, ours_env = [], []
        for k in [int(x) for x in a.eval_keys.split(",")]:
            r = mfax.evaluate_policy(game, policy, jax.random.PRNGKey(k), num_envs=n, gamma=gamma)
            ours.append(float(r.exploitability))
            per_env = np.asarray(r.per_env_exploitability)
            ours_env += per_env.tolist()
            for z, e in zip(np.asarray(r.trajectory.common_noise[0]), per_env):
                by_noise.setdefault(float(z), []).append(float(e))
        for e in pub:
            for z, v in zip(e.get("per_env_noise") or [], e["per_env_exploitability"]):
                pub_by_noise.setdefault(float(z), []).append(float(v))
        pm, pse = _stats(pub_env)
        om, ose = _stats(ours_env)
        rows.append(
            dict(
                num_envs=n,
                published_per_key=pub_vals,
                mfax_per_key=ours,
                published_mean=pm,
                published_se=pse,
                mfax_mean=om,
                mfax_se=ose,
            )
        )
        print(
            f"[{algo}] {n:4d} envs x {len(ours)} keys: published evaluator "
            f"{pm:10.3f} +- {pse:.3f} {[f'{v:.2f}' for v in pub_vals]} | mfax evaluator "
            f"{om:10.3f} +- {ose:.3f} {[f'{v:.2f}' for v in ours]}",
            flush=True,
        )
    record["evaluations"] = rows
    # Each environment's exploitability depends only on its common-noise draw (on
    # linear-quadratic one z = +-1 per episode, equally likely): group both evaluators'
    # per-environment values by z and compare them one to one.
    if by_noise and set(by_noise) == set(pub_by_noise) and len(by_noise) <= 16:
        per_z = {
            z: dict(
                mfax=float(np.mean(by_noise[z])),
                published=float(np.mean(pub_by_noise[z])),
                mfax_spread=float(np.ptp(by_noise[z])),
                published_spread=float(np.ptp(pub_by_noise[z])),
                mfax_envs=len(by_noise[z]),
                published_envs=len(pub_by_noise[z]),
            )
            for z in sorted(by_noise)
        }
        record["per_noise"] = {str(z): v for z, v in per_z.items()}
        for z, v in per_z.items():
            print(
                f"[{algo}] common noise z = {z:+g}: mfax evaluator {v['mfax']:.4f} "
                f"({v['mfax_envs']} envs, spread {v['mfax_spread']:.1e}) | published evaluator "
                f"{v['published']:.4f} ({v['published_envs']} envs, spread "
                f"{v['published_spread']:.1e}) | diff {v['mfax'] - v['published']:+.2e}",
                flush=True,
            )
        if game_name == "linear_quadratic" and set(per_z) == {-1.0, 1.0}:
            exact = {
                side: 0.5 * (per_z[-1.0][side] + per_z[1.0][side]) for side in ("mfax", "published")
            }
            record["exact_expectation"] = exact
            print(
                f"[{algo}] exact expectation over the common noise (z = +-1, 1/2 each): "
                f"mfax evaluator {exact['mfax']:.4f}, published evaluator "
                f"{exact['published']:.4f}",
                flush=True,
            )
    out.append(record)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--published-python", required=True)
    ap.add_argument("--published-repo", required=True)
    ap.add_argument("--game", default="linear_quadratic", choices=sorted(PUBLISHED_GAMES))
    ap.add_argument("--algos", default="rspg,spg")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=400)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--num-envs", type=int, default=8, help="training environments")
    ap.add_argument("--eval-envs", default="8,256")
    ap.add_argument("--eval-keys", default="0,1,2")
    ap.add_argument("--workdir", default="/tmp/mfax-cross-evaluate")
    ap.add_argument("--reuse", action="store_true", help="reuse a saved agent in --workdir")
    ap.add_argument(
        "--platform", default="cpu", help="JAX_PLATFORMS for the published side ('' to inherit)"
    )
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    out: list = []
    for algo in a.algos.split(","):
        cross_evaluate(algo, a, out)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
