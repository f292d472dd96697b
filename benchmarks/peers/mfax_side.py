"""Side-by-side with MFGLib, the mfax side: the arrays `mfglib_side.py` exported, as a
`make_tabular_game`, solved by mfax's algorithms (run after it, with the project's venv).

`python benchmarks/peers/mfax_side.py [100,1000,sis,rps]`: the games to run (default all).
For ``sis`` mfax's own `susceptible_infected` game is first checked against MFGLib's
exported transition and reward tables, and MFGLib's final policies are scored by mfax.
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

peer = json.load(open(f"{DIR}/mfglib.json"))
games = sys.argv[1].split(",") if len(sys.argv) > 1 else ["100", "1000", "sis", "rps"]
rows = []


def bench(game, n, algo, settings, iters):
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

    def hit(th):  # seconds to reach th of the uniform policy's
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
        best=r.min(),
        t2=hit(1e-2),
        t4=hit(1e-4),
    )
    rows.append(line)
    print(line, flush=True)


if "sis" in games:
    import mfax

    d = np.load(f"{DIR}/sis.npz")
    sis = mfax.make_game("susceptible_infected")
    agg, mu0 = sis.reset(jax.random.PRNGKey(0))
    assert sis.horizon == int(d["T"]) + 1 and np.allclose(mu0, d["mu0"])
    for i, P, R in zip(d["infected"], d["P"], d["R"]):
        idx, prob = sis.kernel(agg, jnp.asarray([1 - i, i], jnp.float32))
        dense = np.zeros((2, 2, 2))
        np.add.at(dense, (np.arange(2)[:, None, None], np.arange(2)[None, :, None], idx), prob)
        assert np.allclose(dense, P, atol=1e-6) and np.allclose(sis.reward(agg, mu0, agg, mu0), R)
    print("sis: mfax's kernel and reward equal MFGLib's at infected shares", d["infected"])
    for name in ("fp", "omd", "prior_descent", "fp_damped_0.1", "fp_damped_0.5"):
        got = peer.get(f"sis/{name}")
        if got:
            ev = mfax.evaluate_policy(sis, jnp.asarray(got["policy"]), jax.random.PRNGKey(0))
            e = got["expls"]
            print(
                f"MFGLib {name}: {len(e) - 1} iterations, {got['wall'] / (len(e) - 1):.3g} s/it, "
                f"relative @1 {e[1] / e[0]:.3g} @10 {e[10] / e[0]:.3g} @100 {e[100] / e[0]:.3g} "
                f"last {e[-1] / e[0]:.3g} best {min(e) / e[0]:.3g}; its final policy scored by "
                f"mfax: {float(ev.exploitability):.6g} (MFGLib: {e[-1]:.6g})",
                flush=True,
            )
    for algo, settings in (
        ("fp", {}),
        ("fp_damped", dict(damping=0.1)),
        ("fp_damped", dict(damping=0.5)),
        ("omd", dict(learning_rate=1.0)),
        ("omd", dict(learning_rate=0.1)),
        ("prior_descent", dict(temperature=1.0)),
        ("prior_descent", dict(temperature=3.0)),
        ("boltzmann", dict(temperature=0.1)),
    ):
        bench(sis, "sis", algo, settings, 1000)

if "rps" in games:
    import mfax

    rps = mfax.make_game("rock_paper_scissors")
    for name in ("fp", "omd", "omd_0.1"):
        got = peer.get(f"rps/{name}")
        if got:
            pol = jnp.asarray(got["policy"])  # [T + 1, S, A]
            ev = mfax.evaluate_policy(rps, pol, jax.random.PRNGKey(0))
            e = np.asarray(got["expls"])
            print(
                f"MFGLib {name}: {len(e) - 1} iterations, {got['wall'] / (len(e) - 1):.3g} s/it, "
                f"relative @1 {e[1] / e[0]:.3g} @10 {e[10] / e[0]:.3g} @100 {e[100] / e[0]:.3g} "
                f"last {e[-1] / e[0]:.3g}; t(1e-2) "
                + (f"{np.argmax(e / e[0] <= 1e-2)} it." if (e / e[0] <= 1e-2).any() else "-")
                + f"; final shares {np.round(np.asarray(got['policy'])[0, 0], 4)}, scored by "
                f"mfax: {float(ev.exploitability):.6g} (MFGLib: {e[-1]:.6g})",
                flush=True,
            )
    for algo, settings in (
        ("fp", {}),
        ("omd", dict(learning_rate=1.0)),
        ("omd", dict(learning_rate=0.1)),
    ):
        bench(rps, "rps", algo, settings, 1000)

for n, iters in ((100, 1000), (1000, 1000)):
    if str(n) not in games:
        continue
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
        bench(game, n, algo, settings, iters)
json.dump(rows, open(f"{DIR}/mfax_{'_'.join(games)}.json", "w"))
