"""Side-by-side with MFGLib and OpenSpiel, the mfax side: the arrays `mfglib_side.py`
exported, as a `make_tabular_game`, solved by mfax's algorithms (run after it, with the
project's venv); and OpenSpiel's ``mfg_crowd_modelling`` rebuilt as a `make_tabular_game`.

`python benchmarks/peers/mfax_side.py [100,1000,sis,rps,os100,os1000]`: the games to run
(default the MFGLib ones).  For ``sis`` mfax's own `susceptible_infected` game is first
checked against MFGLib's exported transition and reward tables, and MFGLib's final policies
are scored by mfax.  For ``osS`` (after `openspiel_side.py` at size S) the rebuilt game's
uniform-policy exploitability is checked against OpenSpiel's and OpenSpiel's final policies
are scored by mfax; see `crowd_modelling_as_openspiel_scores_it` for what the rebuilt game is.
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

peer = json.load(open(f"{DIR}/mfglib.json")) if os.path.exists(f"{DIR}/mfglib.json") else {}
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


def crowd_modelling_as_openspiel_scores_it(S, T=10):
    """OpenSpiel's C++ ``mfg_crowd_modelling`` (size S, horizon T) as its own evaluators see it.

    The game: uniform ``mu_0``; action ``a`` in (-1, 0, 1), then noise ``d`` in (-1, 0, 1)
    with probability 1/3 each, ``x' = x + a + d mod S``; at each decision node (x, t) the
    reward ``1 - |x - S//2| / (S//2) - log(mu_t(x) + 1e-25) - |a_prev| / S`` where
    ``a_prev`` is the action taken at t - 1 (none at t = 0; the action at T - 1 is never
    charged).  OpenSpiel's value computations (best response, policy value, mirror descent)
    cache values by the observation string "(x, t)", which leaves ``a_prev`` out, so the
    charge ``|a_prev| / S`` that enters every value is the one of the path that first reached
    (x, t) in their depth-first walk (initial states 0..S-1, actions and noise in order
    -1, 0, 1, each node's children walked on its first visit only).  That walk is replayed
    here, and the charge becomes a cost ``c[t, x]`` of the state, independent of the action:
    the game OpenSpiel's exploitabilities measure (checked on the uniform policy).
    """
    move = (-1, 0, 1)
    last = np.ones((T, S), int)  # t = 0: no previous action (OpenSpiel's neutral one)
    seen_chance, seen_node = set(), set()

    def walk(x, t):
        for a in range(3):
            c = (x + move[a]) % S
            if (c, t) in seen_chance:
                continue
            seen_chance.add((c, t))
            for d in range(3):
                y = (c + move[d]) % S
                if t + 1 < T and (y, t + 1) not in seen_node:
                    seen_node.add((y, t + 1))
                    last[t + 1, y] = a
                    walk(y, t + 1)

    for x0 in range(S):
        walk(x0, 0)
    cost = jnp.asarray(np.abs(np.asarray(move)[last]) / S, jnp.float32)
    h = S // 2
    place = jnp.asarray(1.0 - np.abs(np.arange(S) - h) / h, jnp.float32)

    def reward(t, s, a, mu):
        return place[s] - jnp.log(mu[s] + 1e-25) - cost[t, s]

    x = np.arange(S)[:, None, None]
    idx = (x + np.asarray(move)[None, :, None] + np.asarray(move)[None, None, :]) % S
    game = make_tabular_game(
        np.full(S, 1.0 / S),
        reward,
        horizon=T,
        kernel_indices=idx,
        kernel_probs=np.full((S, 3, 3), 1.0 / 3.0),
        discount=1.0,
        name=f"openspiel_crowd_modelling_{S}",
    )
    return game, int((last != 1).sum())


for g in games:
    if not g.startswith("os"):
        continue
    import mfax

    S = int(g[2:])
    game, charged = crowd_modelling_as_openspiel_scores_it(S)
    ospeer = json.load(open(f"{DIR}/openspiel.json"))
    uni = mfax.evaluate_policy(game, jnp.full((10, S, 3), 1.0 / 3.0), jax.random.PRNGKey(0))
    print(
        f"OpenSpiel crowd_modelling S={S} ({charged} of {9 * S} later nodes charged 1/S): "
        f"uniform policy's exploitability, mfax {float(uni.exploitability):.7g}, "
        f"OpenSpiel {ospeer[f'{S}/uniform']['expl']:.7g}",
        flush=True,
    )
    for name, got in ospeer.items():
        if not name.startswith(f"{S}/") or name.endswith("/uniform"):
            continue
        e = np.asarray(got["expls"]) / got["expls"][0]
        ev = mfax.evaluate_policy(game, jnp.asarray(got["policy"]), jax.random.PRNGKey(0))
        print(
            f"OpenSpiel {name}: {len(e) - 1} iterations, {np.mean(got['iter_s'][1:]):.3g} s/it "
            f"(+{np.mean(got['nash_conv_s']):.3g} s per nash_conv), best {e.min():.3g}, last "
            f"{e[-1]:.3g}; its final policy scored by mfax: {float(ev.exploitability):.6g} "
            f"(OpenSpiel: {got['expls'][-1]:.6g})",
            flush=True,
        )
    for algo, settings in (
        ("fp", {}),
        ("fp_damped", dict(damping=0.1)),
        ("omd", dict(learning_rate=0.1)),
        ("omd", dict(learning_rate=0.3)),
        ("omd", dict(learning_rate=0.5)),
        ("omd", dict(learning_rate=1.0)),
        ("omd", dict(learning_rate=1.5)),
        ("omd", dict(learning_rate=2.0)),
    ):
        # the best one at S = 1000 needs about 10300 iterations to reach 1e-4
        long = S >= 1000 and algo == "omd" and settings["learning_rate"] == 1.0
        bench(game, g, algo, settings, 20000 if long else 10000)
json.dump(rows, open(f"{DIR}/mfax_{'_'.join(games)}.json", "w"))
