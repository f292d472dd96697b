"""Side-by-side with OpenSpiel (docs/solvers.md, "Beside OpenSpiel"), the OpenSpiel side: run
with a separate venv's python (`python3 -m venv /tmp/osvenv && /tmp/osvenv/bin/pip install
open_spiel`; never a project dependency):

    /tmp/osvenv/bin/python benchmarks/peers/openspiel_side.py 100:fp:100:300 1000:omd_1:3:600

Each argument is ``S:ALG:ITERS:WALL``: OpenSpiel's C++ ``mfg_crowd_modelling`` (horizon 10,
``size`` S) solved by ALG (``fp``: its fictitious play, learning rate 1/i; ``omd_LR``: its
mirror descent with learning rate LR) for ITERS iterations or until WALL seconds of solver
time have passed, whichever comes first.  After every iteration the policy is scored by
OpenSpiel's own ``nash_conv.NashConv`` (timed apart: seconds per iteration are the solver's
alone).  Results go to $PEERBENCH_DIR/openspiel.json (default /tmp/peerbench), keyed
``S/ALG``, with the final policy as a ``[T, S, A]`` table so that ``mfax_side.py`` can score
it with mfax's exact evaluator; ``S/uniform`` holds the uniform policy's exploitability.
"""

import json
import os
import sys
import time
from importlib.metadata import version

import numpy as np
import pyspiel
from open_spiel.python import policy as policy_std
from open_spiel.python.mfg.algorithms import fictitious_play, mirror_descent, nash_conv

DIR = os.environ.get("PEERBENCH_DIR", "/tmp/peerbench")  # shared by the two sides
os.makedirs(DIR, exist_ok=True)
OUT = f"{DIR}/openspiel.json"
HORIZON = 10


def load():
    return json.load(open(OUT)) if os.path.exists(OUT) else {}


def save(key, value):
    out = load()  # re-read: several runs may add to the file one after the other
    out[key] = value
    json.dump(out, open(OUT, "w"))


def policy_table(game, pol, S):
    """The policy at every decision node (x, t) as ``[T, S, A]``, read at the states that
    OpenSpiel's own tabular policies enumerate (one per observation "(x, t)")."""
    table = np.full((HORIZON, S, 3), np.nan)
    for state in policy_std.get_tabular_policy_states(game).values():
        x, t = map(int, state.observation_string(0).strip("()").split(","))
        for a, p in pol.action_probabilities(state).items():
            table[t, x, a] = p
        table[t, x] = np.nan_to_num(table[t, x])
    return table


def run(S, alg, iters, wall):
    game = pyspiel.load_game("mfg_crowd_modelling", {"size": S, "horizon": HORIZON})
    key = f"{S}/uniform"
    if key not in load():
        t = time.perf_counter()
        e0 = nash_conv.NashConv(game, policy_std.UniformRandomPolicy(game)).nash_conv()
        save(key, dict(expl=e0, nash_conv_s=time.perf_counter() - t))
    e0 = load()[key]["expl"]
    if alg == "fp":
        solver = fictitious_play.FictitiousPlay(game)
    else:
        solver = mirror_descent.MirrorDescent(game, lr=float(alg.split("_")[1]))
    expls, its, checks = [e0], [], []
    start = time.perf_counter()
    while len(its) < iters and sum(its) < wall:
        t = time.perf_counter()
        solver.iteration()
        its.append(time.perf_counter() - t)
        t = time.perf_counter()
        expls.append(nash_conv.NashConv(game, solver.get_policy()).nash_conv())
        checks.append(time.perf_counter() - t)
        print(
            f"S={S} {alg} it {len(its)}: {its[-1]:.3g} s (+{checks[-1]:.3g} s nash_conv), "
            f"relative {expls[-1] / e0:.3g}",
            flush=True,
        )
    save(
        f"{S}/{alg}",
        dict(
            expls=expls,
            iter_s=its,
            nash_conv_s=checks,
            wall=time.perf_counter() - start,
            policy=policy_table(game, solver.get_policy(), S).tolist(),
            version=version("open_spiel"),
        ),
    )


for arg in sys.argv[1:]:
    S, alg, iters, wall = arg.split(":")
    run(int(S), alg, int(iters), float(wall))
