"""Side-by-side with MFGLib, the mfax side: the arrays `mfglib_side.py` exported, as a
`make_tabular_game`, solved by mfax's algorithms (run after it, with the project's venv).
"""

import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from mfax.games import make_tabular_game
from mfax.solvers import get_solver, solve_fn

DIR = os.environ.get("PEERBENCH_DIR", "/tmp/peerbench")  # shared by the two sides

peer = json.load(open(f"{DIR}/mfglib.json")) if len(sys.argv) < 2 else {}
rows = []
for n, iters in ((100, 1000), (1000, 1000)):
    d = np.load(f"{DIR}/beach_bar_{n}.npz")
    c = jnp.asarray(d["c1"] + d["c2"], jnp.float32)
    eps = float(d["log_eps"])

    def reward(t, s, a, mu, c=c, eps=eps):
        return c[s, a] - jnp.log(mu[s] + eps)

    game = make_tabular_game(
        d["mu0"],
        reward,
        horizon=int(d["T"]) + 1,
        transitions=d["P"],
        discount=1.0,
        name=f"mfglib_beach_bar_{n}",
    )
    for algo, settings in (
        ("fp", {}),
        ("omd", dict(learning_rate=1.0)),
        ("omd", dict(learning_rate=0.1)),
        ("prior_descent", dict(temperature=1.0)),
    ):
        solver = get_solver(algo)
        s = {
            k: np.float32(v)
            for k, v in {**{x.name: x.default for x in solver.settings}, **settings}.items()
            if k != "prior_update_every"
        }
        static = {"prior_update_every": 1} if algo == "prior_descent" else {}
        fn = jax.jit(solve_fn(game, solver, iters, 1.0, static))
        t = time.perf_counter()
        comp = fn.lower(s).compile()
        ct = time.perf_counter() - t
        t = time.perf_counter()
        sol = jax.block_until_ready(comp(s))
        per = (time.perf_counter() - t) / iters
        e = np.asarray(sol.exploitability, float)
        r = e / e[0]

        def hit(th, r=r, per=per):  # seconds to reach th of the uniform policy's
            return f"{np.nonzero(r <= th)[0][0] * per:.3g}" if (r <= th).any() else "-"

        line = dict(
            lib="mfax",
            n=n,
            algo=algo,
            settings=settings,
            compile=ct,
            s_it=per,
            e0=e[0],
            r1=r[1],
            r10=r[10],
            r100=r[100],
            r1000=r[1000] if iters >= 1000 else None,
            t2=hit(1e-2),
            t4=hit(1e-4),
        )
        rows.append(line)
        print(line, flush=True)
json.dump(rows, open(f"{DIR}/mfax.json", "w"))
