"""Crowd aversion on a ring (docs/games.md#crowd_ring), after OpenSpiel's ``crowd_modelling``.

Agents on a ring of ``S`` points move by ``-m..m`` and are then pushed by an
idiosyncratic noise; they like the middle of the ring and dislike crowds
(``-log mu``).  The congestion cost is strictly monotone (Lasry-Lions), so
the game has a unique equilibrium, which the tabular solvers approach at
their own rates: a benchmark game for them.
"""

from __future__ import annotations

import jax.numpy as jnp

from mfax.games.base import ClockAggregate
from mfax.games.grid1d import Grid1DGame
from mfax.games.params import CrowdRingParams


class CrowdRing(Grid1DGame):
    name = "crowd_ring"
    default_discount = 1.0  # OpenSpiel's crowd_modelling is undiscounted
    obs_names = ("time",)

    position_name = "position on the ring"

    def __init__(self, params: CrowdRingParams):
        self.params = params
        self.num_states, self.num_actions, self.kernel_size = params.sizes()
        self.obs_dim = 1

    def reset(self, key):
        S = self.params.num_states
        agg = ClockAggregate.start()
        return agg, jnp.full((S,), 1.0 / S, jnp.float32)

    def move_and_noise(self, agg):
        # the ring's moves and noise both wrap around, so the noise after a move depends
        # on the point it reaches alone
        p = self.params
        x = jnp.arange(p.num_states, dtype=jnp.int32)
        a = jnp.asarray(self.action_values(), jnp.int32)
        delta = jnp.asarray(p.noise_atoms if p.idio_noise else (0,), jnp.int32)
        return jnp.mod(x[:, None] + a, p.num_states), jnp.mod(x[:, None] + delta, p.num_states)

    def next_aggregate(self, key, agg):
        return agg._replace(t=agg.t + 1)

    def reward(self, agg, mu, agg_next, mu_next):
        p = self.params
        S, half = p.num_states, p.num_states // 2
        x = jnp.arange(S, dtype=jnp.float32)
        place = p.position_weight * (1.0 - jnp.abs(x - half) / half)
        crowd = -p.crowd_aversion * jnp.log(mu + 1e-8)
        a = jnp.asarray(self.action_values(), jnp.float32)
        return (place + crowd)[:, None] - jnp.abs(a)[None, :] / S

    def raw_observation(self, agg, mu):
        return agg.t.astype(jnp.float32)[None]

    def observation(self, agg, mu):
        return self.raw_observation(agg, mu) / self.horizon
