"""Side-by-side with MFGLib (docs/solvers.md), the MFGLib side: run with a separate venv's
python (`python3 -m venv /tmp/peers && /tmp/peers/bin/pip install mfglib==0.3.0`; never a
project dependency): `/tmp/peers/bin/python benchmarks/peers/mfglib_side.py 100 5`.

Exports MFGLib's beach bar (T = 10, n = 100 and 1000 states, bar at n // 2) as arrays to
$PEERBENCH_DIR (default /tmp/peerbench) and runs its solvers there for the given iterations.
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

out = {}
for n, iters, algs in (
    (100, int(sys.argv[1]), ("fp", "omd", "prior_descent")),
    (1000, int(sys.argv[2]), ("fp", "omd")),
):
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
    for name, alg in (
        ("fp", FictitiousPlay()),
        ("omd", OnlineMirrorDescent(alpha=1.0)),
        ("prior_descent", PriorDescent(eta=1.0)),
    ):
        if name not in algs:
            continue
        t = time.time()
        pis, expls, rts = alg.solve(env, max_iter=iters, atol=None, rtol=None)
        out[f"{n}/{name}"] = dict(
            expls=[float(e) for e in expls], rts=[float(r) for r in rts], wall=time.time() - t
        )
        json.dump(out, open(f"{DIR}/mfglib.json", "w"))
        print(
            n,
            name,
            f"{(time.time() - t) / iters:.3g} s/it",
            expls[0],
            expls[-1] / expls[0],
            flush=True,
        )
json.dump(out, open(f"{DIR}/mfglib.json", "w"))
