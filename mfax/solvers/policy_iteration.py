"""Boltzmann policy iteration: one soft policy-improvement step per mean-field update.

``pi_{k+1} = softmax(Q^{pi_k}_{mu_k} / temperature)``, the Boltzmann policy of
the current policy's own action values against its own mean field: no best
response, only one policy evaluation per iteration (which the exploitability
computation does anyway).  Its fixed points are policies that are Boltzmann in
their own values; their exploitability shrinks with the temperature.
"""

from __future__ import annotations

import jax

from mfax.solvers._core import Setting, Solver


def _update(ctx, pi, ev, k, s):
    return jax.nn.softmax(ev.q_policy() / s["temperature"], -1)


BPI = Solver(
    name="bpi",
    summary="Boltzmann policy iteration: softmax of the current policy's own Q",
    settings=(Setting("temperature", 0.1, "softmax temperature", 0.0, open_low=True),),
    init=lambda ctx, s: ctx.uniform(),
    policy=lambda ctx, pi, s: pi,
    update=_update,
)
