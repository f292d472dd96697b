"""Prior descent (Cui & Koeppl 2021, arXiv:2102.01585; the GMF-V style of Guo et al.):
an entropy-regularised best response relative to a prior that is moved every few steps.

Each iteration computes the soft-optimal policy against the current mean field
with a KL penalty of weight ``temperature`` towards the prior ``q``, by soft
backward induction

    Q_t = r_t + gamma E[V_{t+1}],  V_t = tau log sum_a q_t(a|s) exp(Q_t / tau),
    pi_t ~ q_t exp(Q_t / tau),

and every ``prior_update_every`` iterations the prior becomes the current policy
(``prior_update_every = 1``: a mirror-descent step with the soft-optimal Q).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mfax.solvers._core import Setting, Solver


def _init(ctx, s):
    zeros = ctx.zeros()
    return zeros, zeros  # logits of the prior and of the policy


def _policy(ctx, state, s):
    return jax.nn.softmax(state[1], -1)


def _update(ctx, state, ev, k, s):
    prior, _ = state
    tau, gamma = s["temperature"], ctx.gamma
    log_prior = jax.nn.log_softmax(prior, -1)

    def step(v_next, expect, reward, log_q):
        logits = log_q + (reward + gamma * expect(v_next)) / tau
        return tau * jax.nn.logsumexp(logits, -1), logits

    _, logits = ctx.backward(ev.traj, step, jnp.zeros(ctx.value_shape, jnp.float32), log_prior)
    move = (k + 1) % s["prior_update_every"] == 0
    return jnp.where(move, logits, prior), logits


PRIOR_DESCENT = Solver(
    name="prior_descent",
    summary="softmax best response against a prior that becomes the policy every few steps",
    settings=(
        Setting("temperature", 1.0, "weight of the KL penalty to the prior", 0.0, open_low=True),
        Setting("prior_update_every", 1, "iterations between prior updates", 1.0, integer=True),
    ),
    init=_init,
    policy=_policy,
    update=_update,
)
