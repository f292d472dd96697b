"""Fictitious play (Perrin et al. 2020, arXiv:2007.03458) and its fixed-rate (damped) variant.

Both keep a running *occupancy-weighted* average of best responses: each best
response is weighted, state by state, by the distribution of the agent who
plays it on the frozen mean-field path, so the average policy induces the
average of their mean fields.  ``fp`` gives the k-th best response weight
``1/(k+1)`` (the plain average, exploitability ~ 1/k on monotone games);
``fp_damped`` a fixed rate ``damping`` (an exponential average that forgets
early best responses; ``damping = 1`` is best-response iteration).
"""

from __future__ import annotations

from mfax.solvers._core import Setting, Solver, normalise_joint, tied_best_response


def _init_empty(ctx, s):
    # nothing averaged yet: iteration 0 plays the uniform policy and its best
    # response becomes the first member of the average
    return ctx.zeros()


def _init_uniform(ctx, s):
    # the uniform policy's occupancy, so the first update already mixes at rate `damping`
    ev = ctx.evaluate(ctx.uniform())
    return ctx.per_env(ev.traj.mu)[..., None] * ctx.uniform()


def _policy(ctx, joint, s):
    return normalise_joint(joint)


def _best_term(ctx, ev):
    best = tied_best_response(ev.q_star())
    return ctx.occupancy(ev.traj, best)[..., None] * best


def _update_fp(ctx, joint, ev, k, s):
    return joint + _best_term(ctx, ev)


def _update_damped(ctx, joint, ev, k, s):
    d = s["damping"]
    return (1.0 - d) * joint + d * _best_term(ctx, ev)


FP = Solver(
    name="fp",
    summary="fictitious play: occupancy-weighted average of all best responses",
    settings=(),
    init=_init_empty,
    policy=_policy,
    update=_update_fp,
)

FP_DAMPED = Solver(
    name="fp_damped",
    summary="fictitious play with a fixed mixing rate (damping); damping=1 is "
    "best-response iteration",
    settings=(Setting("damping", 0.1, "weight of the new best response", 0.0, 1.0, open_low=True),),
    init=_init_uniform,
    policy=_policy,
    update=_update_damped,
)
