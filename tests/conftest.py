"""Shared helpers for the core tests: independent numpy references written
from docs/games.md / docs/algorithms.md (dense kernels, python loops), and
conversions from mfax's kernel rows to dense matrices.

Nothing here calls mfax code beyond building aggregate states, so the
references can disagree with the code when the code is wrong.
"""

from __future__ import annotations

import math
import shutil
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfax
from mfax.games.beach_bar import BarAggregate
from mfax.games.linear_quadratic import LQAggregate
from mfax.games.macro import MacroAggregate


def mfax_command() -> list[str]:
    """The installed ``mfax`` script beside this interpreter (or ``python -m mfax.cli``)."""
    exe = shutil.which("mfax", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "mfax.cli"]


# --------------------------------------------------------------------------
# aggregate-state constructors
# --------------------------------------------------------------------------
GAMES = ["linear_quadratic", "beach_bar_1d", "macro"]


def small_game(name: str, **kw):
    """Published sizes, except macro (num_wealth=40, horizon=16) to keep tests fast."""
    if name == "macro":
        kw = {"num_wealth": 40, "horizon": 16, **kw}
    return mfax.make_game(name, **kw)


def lq_agg(t: int, z: float) -> LQAggregate:
    return LQAggregate(t=jnp.asarray(t, jnp.int32), z=jnp.asarray(z, jnp.float32))


def bar_agg(t: int, z: float, bar: int) -> BarAggregate:
    return BarAggregate(
        t=jnp.asarray(t, jnp.int32), z=jnp.asarray(z, jnp.float32), bar=jnp.asarray(bar, jnp.int32)
    )


def macro_agg(t: int, z: float) -> MacroAggregate:
    return MacroAggregate(t=jnp.asarray(t, jnp.int32), z=jnp.asarray(z, jnp.float32))


def agg_at(traj, t: int, e: int):
    """The aggregate state of environment ``e`` at time ``t`` of a trajectory."""
    return jax.tree_util.tree_map(lambda x: x[t, e], traj.aggregate)


def np_random_policy(game, seed: int) -> np.ndarray:
    """A random time-dependent table ``[T, S, A]`` (Dirichlet(1) rows) drawn with numpy.

    ``mfax.policies.random_policy`` is used on the published game sizes; for
    other sizes this avoids compiling jax's Dirichlet sampler for each shape.
    """
    rng = np.random.default_rng(seed)
    pol = rng.dirichlet(np.ones(game.num_actions), size=(game.horizon, game.num_states))
    pol = pol.astype(np.float32)
    return pol / pol.sum(-1, keepdims=True)


# --------------------------------------------------------------------------
# kernels as dense matrices
# --------------------------------------------------------------------------
def dense_kernel(idx, prob, num_states: int) -> np.ndarray:
    """mfax kernel rows ``idx, prob [S, A, K]`` -> dense ``P[S, A, S']``."""
    idx, prob = np.asarray(idx), np.asarray(prob, np.float64)
    S, A, K = idx.shape
    P = np.zeros((S, A, num_states))
    s = np.broadcast_to(np.arange(S)[:, None, None], idx.shape)
    a = np.broadcast_to(np.arange(A)[None, :, None], idx.shape)
    np.add.at(P, (s, a, idx), prob)
    return P


def ref_lq_kernel(p, t: int, z: float) -> np.ndarray:
    """docs/games.md#linear_quadratic, written with python loops."""
    S = p.num_states
    acts = range(-p.max_action, p.max_action + 1)
    if not p.common_noise or z == 0:
        eps = 0.0
    elif t < 8:
        eps = -10.0 * z
    elif t > 20:
        eps = 10.0 * z
    else:
        eps = 0.0
    P = np.zeros((S, len(acts), S))
    for x in range(S):
        for ia, a in enumerate(acts):
            d = int(np.clip(x + a + p.sigma * p.rho * eps, 0, S - 1))
            if not p.idio_noise:
                P[x, ia, d] += 1.0
                continue
            for delta, pr in zip(p.noise_atoms, p.noise_probs):
                nxt = int(
                    np.clip(np.round(d + p.sigma * math.sqrt(1 - p.rho**2) * delta), 0, S - 1)
                )
                P[x, ia, nxt] += pr
    return P


def ref_lq_reward(p, t: int, mu_next: np.ndarray) -> np.ndarray:
    S = p.num_states
    m = float(np.dot(mu_next, np.arange(S)))
    R = np.zeros((S, 2 * p.max_action + 1))
    for x in range(S):
        for ia, a in enumerate(range(-p.max_action, p.max_action + 1)):
            gap = m - x
            if t + 1 == p.horizon:
                R[x, ia] = -(p.c_term / 2) * gap**2
            else:
                R[x, ia] = -p.c_action * a**2 + p.q * a * gap - (p.kappa / 2) * gap**2
    return R


def ref_legal(x: int, y: int, b: int) -> int:
    if x < b <= y:
        return b - 1
    if x > b >= y:
        return b + 1
    return y


def ref_bb_kernel(p, b: int) -> np.ndarray:
    S = p.num_states
    acts = range(-p.max_action, p.max_action + 1)
    P = np.zeros((S, len(acts), S))
    for x in range(S):
        for ia, a in enumerate(acts):
            d = ref_legal(x, int(np.clip(x + a, 0, S - 1)), b)
            if not p.idio_noise:
                P[x, ia, d] += 1.0
                continue
            for delta, pr in zip(p.noise_atoms, p.noise_probs):
                P[x, ia, ref_legal(x, int(np.clip(d + delta, 0, S - 1)), b)] += pr
    return P


def ref_bb_reward(p, b: int, z: float, z_next: float, mu: np.ndarray) -> np.ndarray:
    S = p.num_states
    acts = list(range(-p.max_action, p.max_action + 1))
    R = np.zeros((S, len(acts)))
    for x in range(S):
        for ia, a in enumerate(acts):
            R[x, ia] = (
                -abs(b - x) * z
                - S * (abs(b - x) == 1) * (z_next == 0)
                - abs(a) / S
                - p.crowd_aversion * math.log(mu[x] + 1e-8)
            )
    return R


def ref_grid(bounds, n: int) -> np.ndarray:
    lo, hi = bounds
    piv = max(abs(lo), 0.25)
    return np.maximum(np.geomspace(lo + piv, hi + piv, n) - piv, 0.0)


def ref_macro_parts(p, z: float, mu: np.ndarray):
    """(wealth grid, income grid, k[S], y[S], r, w, cash[S]) from the spec, in float64."""
    kg, yg = ref_grid(p.wealth_bounds, p.num_wealth), ref_grid(p.income_bounds, p.num_income)
    k = np.array([kg[i] for i in range(p.num_wealth) for j in range(p.num_income)])
    y = np.array([yg[j] for i in range(p.num_wealth) for j in range(p.num_income)])
    K, L = float(np.dot(mu, k)), float(np.dot(mu, y))
    r = math.exp(z) * p.alpha * (L / (K + 1e-6)) ** (1 - p.alpha)
    w = math.exp(z) * (1 - p.alpha) * (K / (L + 1e-6)) ** p.alpha
    return kg, yg, k, y, r, w, (1 + r) * k + w * y


def ref_macro_kernel(p, z: float, mu: np.ndarray) -> np.ndarray:
    kg, _, _, _, _, _, cash = ref_macro_parts(p, z, mu)
    nw, ny = p.num_wealth, p.num_income
    acts = (np.arange(p.num_actions) + 0.5) / p.num_actions
    atoms, probs = (p.income_atoms, p.income_probs) if p.idio_noise else ((0,), (1.0,))
    S = nw * ny
    P = np.zeros((S, p.num_actions, S))
    for s in range(S):
        j = s % ny
        for ia, a in enumerate(acts):
            nxt = min(max(cash[s] * (1 - a), kg[0]), kg[-1])
            i = 0
            while i < nw - 2 and kg[i + 1] <= nxt:
                i += 1
            w_hi = (nxt - kg[i]) / (kg[i + 1] - kg[i])
            for atom, pr in zip(atoms, probs):
                jn = min(max(j + atom, 0), ny - 1)
                P[s, ia, i * ny + jn] += (1 - w_hi) * pr
                P[s, ia, (i + 1) * ny + jn] += w_hi * pr
    return P


def ref_macro_reward(p, t: int, z: float, mu: np.ndarray) -> np.ndarray:
    cash = ref_macro_parts(p, z, mu)[-1]
    acts = (np.arange(p.num_actions) + 0.5) / p.num_actions
    u = lambda c: c ** (1 - p.crra) / (1 - p.crra)  # noqa: E731
    if t + 1 == p.horizon:
        return np.repeat(u(cash)[:, None], p.num_actions, 1)
    return u(acts[None, :] * cash[:, None])


# --------------------------------------------------------------------------
# reference rollout + policy value + best response (docs/algorithms.md)
# --------------------------------------------------------------------------
def ref_rollout_and_evaluate(
    game, pi: np.ndarray, z_path: np.ndarray, gamma: float, bar: int | None = None
) -> dict:
    """Independent push-forward rollout and backward induction for one environment.

    ``pi[T, S, A]``; ``z_path[T + 1]`` the common noise at t = 0..T (read from
    mfax's trajectory: it is exogenous); ``bar`` the beach-bar location.
    """
    p = game.params
    T, S = p.horizon, game.num_states
    if game.name == "beach_bar_1d":
        mu = np.where(np.arange(S) == bar, 0.0, 1.0 / (S - 1))
    else:
        mu = np.full(S, 1.0 / S)
    mus, Ps, Rs = [mu], [], []
    for t in range(T):
        if game.name == "linear_quadratic":
            P = ref_lq_kernel(p, t, z_path[t])
        elif game.name == "beach_bar_1d":
            P = ref_bb_kernel(p, bar)
        else:
            P = ref_macro_kernel(p, z_path[t], mu)
        mu_next = np.einsum("s,sa,sat->t", mu, pi[t], P)
        if game.name == "linear_quadratic":
            R = ref_lq_reward(p, t, mu_next)
        elif game.name == "beach_bar_1d":
            R = ref_bb_reward(p, bar, z_path[t], z_path[t + 1], mu)
        else:
            R = ref_macro_reward(p, t, z_path[t], mu)
        Ps.append(P)
        Rs.append(R)
        mu = mu_next
        mus.append(mu)
    V = np.zeros(S)
    Vs = np.zeros(S)
    actions = np.zeros((T, S), np.int64)
    qgap = np.zeros((T, S))
    for t in reversed(range(T)):
        Q = Rs[t] + gamma * Ps[t] @ V
        Qs = Rs[t] + gamma * Ps[t] @ Vs
        V = np.sum(pi[t] * Q, -1)
        Vs = Qs.max(-1)
        actions[t] = Qs.argmax(-1)
        srt = np.sort(Qs, -1)
        qgap[t] = srt[:, -1] - srt[:, -2]
    mu0 = mus[0]
    return dict(
        mu=np.array(mus),
        V0=V,
        Vstar0=Vs,
        actions=actions,
        qgap=qgap,
        policy_return=float(mu0 @ V),
        best_response_return=float(mu0 @ Vs),
        exploitability=float(mu0 @ (Vs - V)),
    )


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` are excluded by default (pyproject: run them with ``-m slow``)."""
    if config.getoption("markexpr", default=""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
