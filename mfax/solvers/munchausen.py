"""Munchausen online mirror descent in tabular form (Lauriere et al. 2022, "Scalable deep
reinforcement learning algorithms for mean field games", arXiv:2203.11973).

The deep method replaces OMD's sum of Q functions by one Q function trained on
the reward plus a Munchausen bonus ``alpha * tau * log pi_k(a|s)`` with an
entropy term ``-tau log pi_k`` in the bootstrap.  Here that evaluation is
exact, by backward induction on the mean field of ``pi_k``:

    q_t = r_t + alpha tau log pi_k + gamma E[ sum_a' pi_k (q_{t+1} - tau log pi_k) ],
    pi_{k+1} = softmax(q / tau).

With ``alpha = 1`` this is exactly OMD with ``learning_rate = 1 / tau``; with
``alpha < 1`` it converges to the equilibrium of the game regularised by the
entropy with weight ``(1 - alpha) tau``, so its exploitability levels off.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from mfax.solvers._core import Setting, Solver


def _init(ctx, s):
    return ctx.zeros()  # logits of pi_k


def _policy(ctx, logits, s):
    return jax.nn.softmax(logits, -1)


def _update(ctx, logits, ev, k, s):
    tau, alpha, gamma = s["temperature"], s["alpha"], ctx.gamma
    log_pi = jax.nn.log_softmax(logits, -1)
    pi = jnp.exp(log_pi)

    def step(v_next, expect, reward, xs):
        log_pi_t, pi_t = xs
        q = reward + alpha * tau * log_pi_t + gamma * expect(v_next)
        return jnp.sum(pi_t * (q - tau * log_pi_t), -1), q

    _, q = ctx.backward(ev.traj, step, jnp.zeros(ctx.value_shape, jnp.float32), (log_pi, pi))
    return q / tau


MOMD = Solver(
    name="momd",
    summary="Munchausen mirror descent (tabular): softmax(q / tau) of the exact "
    "Munchausen-regularised Q; alpha=1 is OMD with learning_rate=1/tau",
    settings=(
        Setting("temperature", 1.0, "tau, the entropy weight", 0.0, open_low=True),
        Setting("alpha", 1.0, "the Munchausen coefficient", 0.0, 1.0),
    ),
    init=_init,
    policy=_policy,
    update=_update,
)
