"""Fixed-point iteration with a softmax (Boltzmann) best response, and its damped version
(Cui & Koeppl 2021, "Approximately solving mean field games via entropy-regularized deep
reinforcement learning", arXiv:2102.01585).

``boltzmann``: ``pi_{k+1} = softmax(Q*_{mu_k} / temperature)``, the Boltzmann
policy of the optimal action values against the current mean field.  The
softmax makes the map smooth, so for a large enough temperature the iteration
contracts; its limit is the Boltzmann equilibrium, whose exploitability
shrinks with the temperature.  ``boltzmann_damped`` mixes each Boltzmann
response into an occupancy-weighted average at rate ``damping`` (the mean
field moves by that fraction), which converges for smaller temperatures.
"""

from __future__ import annotations

import jax

from mfax.solvers._core import Setting, Solver, normalise_joint
from mfax.solvers.fictitious_play import _init_uniform

_TEMPERATURE = Setting(
    "temperature", 0.1, "softmax temperature of the response", 0.0, open_low=True
)


def _init(ctx, s):
    return ctx.uniform()


def _policy(ctx, pi, s):
    return pi


def _response(ev, s):
    return jax.nn.softmax(ev.q_star() / s["temperature"], -1)


def _update(ctx, pi, ev, k, s):
    return _response(ev, s)


def _update_damped(ctx, joint, ev, k, s):
    d = s["damping"]
    resp = _response(ev, s)
    return (1.0 - d) * joint + d * ctx.occupancy(ev.traj, resp)[..., None] * resp


BOLTZMANN = Solver(
    name="boltzmann",
    summary="fixed-point iteration with a softmax best response",
    settings=(_TEMPERATURE,),
    init=_init,
    policy=_policy,
    update=_update,
)

BOLTZMANN_DAMPED = Solver(
    name="boltzmann_damped",
    summary="damped fixed-point iteration with a softmax best response (mean field moves by "
    "damping)",
    settings=(
        _TEMPERATURE,
        Setting("damping", 0.1, "weight of the new response", 0.0, 1.0, open_low=True),
    ),
    init=_init_uniform,
    policy=lambda ctx, joint, s: normalise_joint(joint),
    update=_update_damped,
)
