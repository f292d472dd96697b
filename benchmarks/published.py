"""Run the published MFAX code (its own python, its own checkout) and read its curve.

The published code is never imported into mfax: `run_published` starts its
``mfax/algos/hsm/algos/{spg,rspg}.py`` script in a subprocess with the python of
a separate virtual environment (Python 3.10, jax 0.6.2, flax 0.10.5, optax 0.2.3,
gymnax 0.0.8, distrax 0.1.5, tensorflow-probability 0.25, tyro, wandb, chex) and
parses the lines it prints::

    Iteration: 20, Train Time: 3.1, Exploitability: 812.4

The published settings per game come from its ``configs/<task>_<algo>.yaml``:
linear-quadratic and the beach bar use state indices and gamma 0.99; the macro
game ("endogenous" there) uses state values and gamma 0.95. Common noise on,
normalised observations, Adam with the lr annealed linearly to 10%, gradient
clipping 1.0, relu. ``num_envs`` and the learning rate are the caller's.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

#: mfax game name -> (published task, state_type, discount factor)
PUBLISHED_GAMES = {
    "linear_quadratic": ("linear_quadratic", "indices", 0.99),
    "beach_bar_1d": ("beach_bar_1d", "indices", 0.99),
    "macro": ("endogenous", "states", 0.95),
    "endogenous": ("endogenous", "states", 0.95),
}
ALGOS = ("spg", "rspg")

_LINE = re.compile(
    r"Iteration:\s*(\d+),\s*Train Time:\s*([-+0-9.eE]+|nan|inf),"
    r"\s*Exploitability:\s*([-+0-9.eE]+|nan|inf)"
)


def published_command(
    python, repo, game, algo, lr, seed, iterations, eval_every, num_envs, save=False
):
    """The command line that runs the published script with the published settings."""
    if game not in PUBLISHED_GAMES:
        raise ValueError(f"published: unknown game {game!r}; allowed: {', '.join(PUBLISHED_GAMES)}")
    if algo not in ALGOS:
        raise ValueError(f"published: algo {algo!r} is not allowed; expected spg or rspg")
    if iterations % eval_every:
        raise ValueError(
            f"published: iterations ({iterations}) must be a multiple of "
            f"eval_every ({eval_every}); the published loop trains whole chunks"
        )
    task, state_type, gamma = PUBLISHED_GAMES[game]
    script = Path(repo) / "mfax" / "algos" / "hsm" / "algos" / f"{algo}.py"
    if not script.is_file():
        raise FileNotFoundError(f"published: no script {script} (is {repo} the MFAX checkout?)")
    return [
        str(python),
        str(script),
        "--task",
        task,
        "--state-type",
        state_type,
        "--discount-factor",
        str(gamma),
        "--normalize-obs",
        "--normalize-states",
        "--common-noise",
        "--algo",
        f"hsm_{algo}",
        "--seed",
        str(seed),
        "--num-envs",
        str(num_envs),
        "--num-iterations",
        str(iterations),
        "--lr",
        repr(float(lr)),
        "--anneal-lr",
        "--max-grad-norm",
        "1.0",
        "--activation",
        "relu",
        "--eval-frequency",
        str(eval_every),
        "--evaluate",
        "--no-log",
        "--no-debug",
        "--save" if save else "--no-save",
    ]


def parse_curve(text):
    """``[(iteration, exploitability)]`` and ``[(iteration, train time)]`` from the output
    (the train time: the script's cumulative training seconds, compilation included)."""
    curve, times = [], []
    for m in _LINE.finditer(text):
        curve.append((int(m.group(1)), float(m.group(3))))
        times.append((int(m.group(1)), float(m.group(2))))
    return curve, times


def run_published(
    python,
    repo,
    game,
    algo,
    lr,
    seed,
    iterations,
    eval_every,
    num_envs,
    env=None,
    timeout=None,
    workdir=None,
):
    """Train with the published code; returns ``dict(curve=[(iteration, exploitability)],
    seconds=wall-clock of the whole run (start-up, compile, training and evaluation),
    train_seconds=the published script's own training time (compile included, evaluation
    excluded), times=[(iteration, that training time at each evaluation)],
    command=[...])``. ``env`` adds environment variables (e.g. JAX_PLATFORMS).
    With ``workdir``, the run happens there and saves its trained agent (the published
    ``--save``: ``workdir/runs/<task>/hsm_<algo>/mf_agent_wrapper.pkl``, returned as
    ``agent``); otherwise in a temporary directory, saving nothing."""
    cmd = published_command(
        python,
        repo,
        game,
        algo,
        lr,
        seed,
        iterations,
        eval_every,
        num_envs,
        save=workdir is not None,
    )
    run_env = dict(os.environ)
    for var in ("PYTHONPATH", "VIRTUAL_ENV"):  # keep the caller's environment out of its imports
        run_env.pop(var, None)
    run_env.update(env or {})
    with tempfile.TemporaryDirectory(prefix="mfax-published-") as tmp:
        cwd = tmp if workdir is None else workdir
        start = time.perf_counter()
        proc = subprocess.run(
            cmd, cwd=cwd, env=run_env, capture_output=True, text=True, timeout=timeout
        )
        seconds = time.perf_counter() - start
    curve, times = parse_curve(proc.stdout)
    if proc.returncode != 0 or not curve:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(
            f"published run failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}"
        )
    res = dict(curve=curve, times=times, seconds=seconds, train_seconds=times[-1][1], command=cmd)
    if workdir is not None:
        task = PUBLISHED_GAMES[game][0]
        res["agent"] = str(Path(workdir) / "runs" / task / f"hsm_{algo}" / "mf_agent_wrapper.pkl")
    return res


if __name__ == "__main__":
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Run the published MFAX code and print its curve.")
    ap.add_argument("--python", required=True, help="python of the published code's venv")
    ap.add_argument("--repo", required=True, help="checkout of the published code")
    ap.add_argument("--game", default="linear_quadratic", choices=sorted(PUBLISHED_GAMES))
    ap.add_argument("--algo", default="rspg", choices=ALGOS)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--iterations", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--num-envs", type=int, default=8)
    a = ap.parse_args()
    res = run_published(
        a.python, a.repo, a.game, a.algo, a.lr, a.seed, a.iterations, a.eval_every, a.num_envs
    )
    print(json.dumps({k: v for k, v in res.items() if k != "command"}))
