"""Linear-quadratic game (docs/games.md#linear_quadratic)."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mfax.games.base import GameParams, check_probabilities, deterministic_row
from mfax.games.grid1d import Grid1DGame


def _normal_weights(atoms: tuple[float, ...]) -> tuple[float, ...]:
    w = [math.exp(-0.5 * a * a) for a in atoms]
    return tuple(x / sum(w) for x in w)


_ATOMS = tuple(float(d) for d in range(-3, 4))


@dataclasses.dataclass(frozen=True)
class LinearQuadraticParams(GameParams):
    game_name = "linear_quadratic"

    num_states: int = 99
    horizon: int = 30
    kappa: float = 0.5
    c_action: float = 0.5
    q: float = 0.1
    c_term: float = 1.0
    sigma: float = 1.0
    rho: float = 0.5
    common_noise: bool = True
    idio_noise: bool = True
    #: actions are the integers -max_action..max_action
    max_action: int = 3
    noise_atoms: tuple[float, ...] = _ATOMS
    noise_probs: tuple[float, ...] = _normal_weights(_ATOMS)
    #: the common-noise push: eps_t = -push_size z for t < push_early_end,
    #: +push_size z for t > push_late_start
    push_size: float = 10.0
    push_early_end: int = 8
    push_late_start: int = 20

    def validate(self) -> None:
        if self.num_states < 2:
            self.fail("num_states", "an integer >= 2")
        if self.horizon < 1:
            self.fail("horizon", "an integer >= 1")
        if self.max_action < 0:
            self.fail("max_action", "an integer >= 0")
        if not 0.0 <= self.rho <= 1.0:
            self.fail("rho", "a number in [0, 1]")
        if self.sigma < 0:
            self.fail("sigma", "a number >= 0")
        for name in ("kappa", "c_action", "c_term"):
            if getattr(self, name) < 0:
                self.fail(name, "a number >= 0")
        check_probabilities(self, "noise_atoms", "noise_probs")


class LQAggregate(NamedTuple):
    t: jax.Array  # int32
    z: jax.Array  # float32, common noise in {-1, +1} (0 when off)


class LinearQuadratic(Grid1DGame):
    name = "linear_quadratic"
    default_discount = 0.99
    obs_names = ("mean_state",)

    position_name = "individual state (position)"

    def __init__(self, params: LinearQuadraticParams):
        self.params = params
        self.num_states, self.num_actions, self.kernel_size = self.sizes(params)
        self.obs_dim = 1

    def reset(self, key):
        p = self.params
        if p.common_noise:
            z = jnp.where(jax.random.bernoulli(key), 1.0, -1.0).astype(jnp.float32)
        else:
            z = jnp.zeros((), jnp.float32)
        mu0 = jnp.full((p.num_states,), 1.0 / p.num_states, jnp.float32)
        return LQAggregate(t=jnp.zeros((), jnp.int32), z=z), mu0

    def push(self, agg: LQAggregate) -> jax.Array:
        """The common-noise push eps_t."""
        p = self.params
        sign = jnp.where(agg.t < p.push_early_end, -1.0,
                         jnp.where(agg.t > p.push_late_start, 1.0, 0.0))
        return sign * p.push_size * agg.z

    def kernel(self, agg, mu):
        p = self.params
        hi = p.num_states - 1
        x = jnp.arange(p.num_states, dtype=jnp.float32)[:, None]
        a = jnp.asarray(self.action_values(), jnp.float32)[None, :]
        # clip to [0, hi] then int() truncates, which is floor on non-negatives
        d = jnp.floor(jnp.clip(x + a + p.sigma * p.rho * self.push(agg), 0, hi))
        if not p.idio_noise:
            return deterministic_row(d.astype(jnp.int32))
        delta = jnp.asarray(p.noise_atoms, jnp.float32)
        scale = p.sigma * math.sqrt(1.0 - p.rho**2)
        nxt = jnp.clip(jnp.round(d[..., None] + scale * delta), 0, hi).astype(jnp.int32)
        probs = jnp.broadcast_to(jnp.asarray(p.noise_probs, jnp.float32), nxt.shape)
        return nxt, probs

    def next_aggregate(self, key, agg):
        return agg._replace(t=agg.t + 1)

    def reward(self, agg, mu, agg_next, mu_next):
        p = self.params
        x = jnp.arange(p.num_states, dtype=jnp.float32)[:, None]
        a = jnp.asarray(self.action_values(), jnp.float32)[None, :]
        gap = jnp.dot(mu_next, jnp.arange(p.num_states, dtype=jnp.float32)) - x
        step = -p.c_action * a**2 + p.q * a * gap - 0.5 * p.kappa * gap**2
        terminal = jnp.broadcast_to(-0.5 * p.c_term * gap**2, step.shape)
        return jnp.where(self.is_last(agg), terminal, step)

    def raw_observation(self, agg, mu):
        return jnp.dot(mu, jnp.arange(self.num_states, dtype=jnp.float32))[None]

    def observation(self, agg, mu):
        return self.raw_observation(agg, mu) / self.num_states
