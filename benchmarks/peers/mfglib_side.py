"""Side-by-side with MFGLib (docs/solvers.md), the MFGLib side: run with a separate venv's
python (`python3 -m venv /tmp/peers && /tmp/peers/bin/pip install mfglib==0.3.0`; never a
project dependency): `/tmp/peers/bin/python benchmarks/peers/mfglib_side.py 100 5 1000`.

Exports MFGLib's beach bar (T = 10, n = 100 and 1000 states, bar at n // 2) as arrays to
$PEERBENCH_DIR (default /tmp/peerbench) and runs its solvers there for the given iterations
(first two arguments; 0 skips a size).  The third argument (default 0: skipped) runs them on
its susceptible-infected game (T = 50) and exports its transition and reward tables at a few
mean fields, which `mfax_side.py` checks against mfax's `susceptible_infected`; the fourth
(comma-separated names of ALGS, default all) picks the algorithms for that game.  The fifth
(default 0: skipped) runs fp, omd and omd_0.1 on its rock-paper-scissors game (T = 1).
"""

import json
import os
import sys
import time

import numpy as np
import torch
from mfglib.alg import FictitiousPlay, OnlineMirrorDescent, PriorDescent
from mfglib.env import Environment

torch.set_num_threads(2)

DIR = os.environ.get("PEERBENCH_DIR", "/tmp/peerbench")  # shared by the two sides

ALGS = {
    "fp": FictitiousPlay,
    "omd": lambda: OnlineMirrorDescent(alpha=1.0),
    "prior_descent": lambda: PriorDescent(eta=1.0),
    "fp_damped_0.1": lambda: FictitiousPlay(alpha=0.1),  # fixed rate, as mfax's fp_damped
    "fp_damped_0.5": lambda: FictitiousPlay(alpha=0.5),
    "omd_0.1": lambda: OnlineMirrorDescent(alpha=0.1),
}
sis_iters = int(sys.argv[3]) if len(sys.argv) > 3 else 0
out = json.load(open(f"{DIR}/mfglib.json")) if os.path.exists(f"{DIR}/mfglib.json") else {}


def run(env, key, name, iters):
    t = time.time()
    pis, expls, rts = ALGS[name]().solve(env, max_iter=iters, atol=None, rtol=None)
    out[f"{key}/{name}"] = dict(
        expls=[float(e) for e in expls],
        rts=[float(r) for r in rts],
        wall=time.time() - t,
        policy=pis[-1].numpy().tolist() if key in ("sis", "rps") else None,
    )
    json.dump(out, open(f"{DIR}/mfglib.json", "w"))
    print(
        key,
        name,
        f"{(time.time() - t) / iters:.3g} s/it",
        expls[0],
        expls[-1] / expls[0],
        flush=True,
    )


if sis_iters:
    env = Environment.susceptible_infected()
    infected = np.linspace(0.0, 1.0, 5)
    L = [torch.tensor([[1 - i, 0.0], [i, 0.0]], dtype=torch.float32) for i in infected]
    np.savez(
        f"{DIR}/sis.npz",
        infected=infected,
        P=np.stack([env.prob(0, x).numpy().transpose(1, 2, 0) for x in L]),  # [., s, a, s']
        R=np.stack([env.reward(0, x).numpy() for x in L]),
        mu0=env.mu0.numpy(),
        T=env.T,
    )
    for name in sys.argv[4].split(",") if len(sys.argv) > 4 and sys.argv[4] else ALGS:
        run(env, "sis", name, sis_iters)

rps_iters = int(sys.argv[5]) if len(sys.argv) > 5 else 0
if rps_iters:
    env = Environment.rock_paper_scissors()
    for name in ("fp", "omd", "omd_0.1"):
        run(env, "rps", name, rps_iters)

for n, iters, algs in (
    (100, int(sys.argv[1]), ("fp", "omd", "prior_descent")),
    (1000, int(sys.argv[2]), ("fp", "omd")),
):
    if not iters:
        continue
    env = Environment.beach_bar(T=10, n=n, bar_loc=n // 2, p_still=0.5)
    rf = env.reward_fn
    P = env.prob(0, torch.ones((n, 3)) / (3 * n)).numpy()  # [s', s, a]
    np.savez(
        f"{DIR}/beach_bar_{n}.npz",
        c1=rf.c1.numpy(),
        c2=rf.c2.numpy(),
        log_eps=rf.log_eps,
        P=P.transpose(1, 2, 0),
        mu0=env.mu0.numpy(),
        T=env.T,
    )
    for name in algs:
        run(env, str(n), name, iters)
