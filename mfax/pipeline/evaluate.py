"""The evaluate stage (``mfax evaluate-run``): every seed of a trained run on the same
episodes -> ``metrics.json``, the seed-aggregated ``curve.csv`` and ``trajectory.nc``.

JAX and the evaluation code are imported when `evaluate_run` runs, not with this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np


def dumps_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


#: columns of reports/<game>/<run>/curve.csv (means over seeds, with the spread of exploitability)
RUN_CURVE_COLUMNS = (
    "iteration",
    "seconds",
    "exploitability",
    "exploitability_std",
    "exploitability_min",
    "exploitability_max",
    "policy_return",
    "best_response_return",
    "exploitability_undiscounted",
    "seeds",
)


def aggregate_curves(curves: list[list[dict]]) -> list[dict]:
    """Per-seed training curves -> one curve: mean (and spread) over seeds at each evaluation."""
    rows = []
    for i in range(max((len(c) for c in curves), default=0)):
        at = [c[i] for c in curves if i < len(c)]
        expl = [r["exploitability"] for r in at if "exploitability" in r]
        row = {
            "iteration": int(at[0]["iteration"]),
            "seconds": _mean([r.get("seconds") for r in at]),
        }
        row["exploitability"] = _mean(expl)
        row["exploitability_std"] = float(np.std(expl)) if expl else None
        row["exploitability_min"] = float(np.min(expl)) if expl else None
        row["exploitability_max"] = float(np.max(expl)) if expl else None
        for k in ("policy_return", "best_response_return", "exploitability_undiscounted"):
            row[k] = _mean([r.get(k) for r in at])
        row["seeds"] = len(at)
        rows.append(row)
    return rows


#: what metrics.json's ``exploitability`` is, for every game (docs/algorithms.md)
EXPLOITABILITY_KIND = (
    "hindsight: a best response that knows each sampled common-noise path "
    "(an upper bound with common noise; exact without)"
)
#: the non-anticipating (adapted) exploitability beside it: exact where the common noise is
#: finite, a Monte-Carlo bracket where it is continuous (macro); None where not computed
ADAPTED_KEYS = (
    "exploitability_exact_adapted",
    "exploitability_lower",
    "exploitability_lower_se",
    "exploitability_upper",
    "exploitability_upper_se",
)


def _evaluate_agent(evaluate_policy, agent, key, num_envs: int, fast: bool):
    """One agent's hindsight `EvalResult` and its adapted exploitability (a dict of
    ``ADAPTED_KEYS``): exact over the enumerated noise tree, or the bracket of
    `mfax.noise_bracket` for continuous noise; None (with the reason) when not computed.

    The bracket's program evaluates the hindsight exploitability on the very paths of the
    plain call (its upper bound), so with continuous noise its result is the hindsight
    result too: one program compiled and run per agent instead of two."""

    def call(**kwargs):
        return evaluate_policy(
            agent.game, agent, key, num_envs, gamma=agent.gamma, fast_compile=fast, **kwargs
        )

    out: dict[str, float | None] = dict.fromkeys(ADAPTED_KEYS)
    result = None
    try:
        if agent.game.noise.finite:
            exact = call(noise="exact", best_response="adapted")
            out["exploitability_exact_adapted"] = float(np.asarray(exact.exploitability))
        elif num_envs >= 2:  # a bracket's standard error needs two paths
            result = call(best_response="adapted")
            for k in ADAPTED_KEYS[1:]:
                out[k] = float(np.asarray(getattr(result, k)))
    except ValueError as err:  # e.g. more common-noise paths than max_paths
        out["adapted_not_computed"] = str(err)
    # a policy that cannot be evaluated at all fails here, whatever the bracket said
    return (call() if result is None else result), out


def evaluate_run(
    model_dir: str | os.PathLike,
    *,
    num_envs: int,
    seed: int,
    episodes: int,
    metrics_path: str | os.PathLike,
    curve_path: str | os.PathLike,
    trajectory_path: str | os.PathLike,
    timer=None,
) -> dict:
    """The evaluate stage: every seed's agent on the same ``num_envs`` push-forward episodes.

    Writes ``metrics.json`` (means, spread and per-seed values, the untrained
    network's and the uniform policy's exploitability, training time), the
    seed-aggregated training ``curve.csv``, and the first seed's trajectory
    (the first ``episodes`` episodes) as NetCDF.  Returns the metrics.  ``timer`` (a
    `mfax.pipeline.timings.Timer`) records the phases: import, load, evaluate (and the
    compilation in it), write.
    """
    import jax

    from mfax.agents import load_agent
    from mfax.evaluation import evaluate_policy
    from mfax.io import atomic_write, curve_csv, read_curve
    from mfax.multiseed import SEEDS_FILE, agent_dirs
    from mfax.pipeline.netcdf import trajectory_dataset, write_netcdf
    from mfax.policies import uniform_policy

    if timer is not None:
        timer.lap("import")
        timer.watch_jax()
    agents = [(s, load_agent(d)) for s, d in agent_dirs(model_dir)]
    game, gamma = agents[0][1].game, agents[0][1].gamma
    for _, a in agents[1:]:
        if a.game != game:
            raise ValueError(
                f"{a.path}: game {a.game!r} differs from {agents[0][1].path}'s {game!r}"
            )
    curves = [read_curve(Path(a.path) / "curve.csv") for _, a in agents]
    if timer is not None:
        timer.lap("load")
    key = jax.random.key(int(seed))
    # compiled as the agents were trained (fast_compile: the tiny preset)
    fast = any((a.description.get("training") or {}).get("fast_compile") for _, a in agents)
    results, adapted = zip(
        *(_evaluate_agent(evaluate_policy, a, key, num_envs, fast) for _, a in agents)
    )
    uniform = evaluate_policy(
        game, uniform_policy(game), key, num_envs, gamma=gamma, fast_compile=fast
    )

    f = lambda x: float(np.asarray(x))  # noqa: E731
    expl = [f(r.exploitability) for r in results]
    per_seed = {}
    for (s, _), r, c in zip(agents, results, curves):
        per_seed[str(s)] = {
            "exploitability": f(r.exploitability),
            "policy_return": f(r.policy_return),
            "best_response_return": f(r.best_response_return),
            "initial_exploitability": c[0]["exploitability"] if c else None,
        }
    for (s, _), extra in zip(agents, adapted):
        per_seed[str(s)].update(extra)
    index_file = Path(model_dir) / SEEDS_FILE
    if index_file.exists():
        index = json.loads(index_file.read_text())
        train_seconds = index.get("train_seconds")
    else:  # separate runs: their total cost
        train_seconds = sum(
            (a.description.get("metrics") or {}).get("train_seconds") or 0.0 for _, a in agents
        )
    metrics = {
        "exploitability": float(np.mean(expl)),
        "exploitability_std": float(np.std(expl)),
        "exploitability_min": float(np.min(expl)),
        "exploitability_max": float(np.max(expl)),
        "policy_return": float(np.mean([f(r.policy_return) for r in results])),
        "best_response_return": float(np.mean([f(r.best_response_return) for r in results])),
        "exploitability_undiscounted": float(
            np.mean([f(r.exploitability_undiscounted) for r in results])
        ),
        "initial_exploitability": _mean([v["initial_exploitability"] for v in per_seed.values()]),
        "uniform_exploitability": f(uniform.exploitability),
        "train_seconds": train_seconds,
        "iterations": max((c[-1]["iteration"] for c in curves if c), default=0),
        "num_seeds": len(agents),
        "eval_num_envs": int(num_envs),
        "exploitability_kind": EXPLOITABILITY_KIND,
        **{k: _mean([x.get(k) for x in adapted]) for k in ADAPTED_KEYS},
        "per_seed": per_seed,
    }
    if timer is not None:
        timer.lap("evaluate")
    first_seed, first = agents[0]
    ds = trajectory_dataset(
        game,
        results[0],
        episodes=episodes,
        gamma=gamma,
        attrs={
            "algorithm": first.algorithm,
            "model": str(model_dir),
            "seed": -1 if first_seed is None else int(first_seed),
            "seeds": json.dumps([s for s, _ in agents]),
            "eval_seed": int(seed),
            "training_config": json.dumps(first.description.get("training") or {}, sort_keys=True),
        },
    )
    write_netcdf(ds, trajectory_path)
    atomic_write(curve_path, curve_csv(aggregate_curves(curves), list(RUN_CURVE_COLUMNS)))
    atomic_write(metrics_path, dumps_json(metrics))
    return metrics
