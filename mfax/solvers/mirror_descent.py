"""Online mirror descent (Perolat et al. 2022, "Scaling up mean field games with online
mirror descent", arXiv:2103.00623).

Each iteration adds the current policy's own action values against its own
mean field to a running sum, ``y <- y + learning_rate * Q^{pi_k}``, and plays
``pi = softmax(y)``: a mirror step with the entropy mirror map (equivalently
``pi_{k+1} ~ pi_k exp(learning_rate Q^{pi_k})``).  It needs no best response,
and on monotone games its iterates themselves (not an average) converge.
"""

from __future__ import annotations

import jax

from mfax.solvers._core import Setting, Solver


def _init(ctx, s):
    return ctx.zeros()


def _policy(ctx, y, s):
    return jax.nn.softmax(y, -1)


def _update(ctx, y, ev, k, s):
    # Shift each state's sum by its largest entry (softmax is unchanged): the raw sum grows
    # like k * Q, and in float32 its differences, which are all the policy reads, drown in
    # rounding after a few thousand iterations (the exploitability then climbs back).
    y = y + s["learning_rate"] * ev.q_policy()
    return y - jax.lax.stop_gradient(y.max(-1, keepdims=True))


OMD = Solver(
    name="omd",
    summary="online mirror descent: softmax of the summed Q of the iterates",
    settings=(
        Setting("learning_rate", 1.0, "step size on the summed Q values", 0.0, open_low=True),
    ),
    init=_init,
    policy=_policy,
    update=_update,
)
