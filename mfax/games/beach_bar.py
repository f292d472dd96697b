"""Beach bar 1D (docs/games.md#beach_bar_1d)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from mfax.games.grid1d import Grid1DGame
from mfax.games.params import BeachBarParams


class BarAggregate(NamedTuple):
    t: jax.Array  # int32
    z: jax.Array  # float32, 1 = bar open, 0 = closed
    bar: jax.Array  # int32 bar location


class BeachBar1D(Grid1DGame):
    name = "beach_bar_1d"
    default_discount = 0.99
    obs_names = ("mean_state", "bar_open", "bar_location")

    position_name = "position on the beach"

    def __init__(self, params: BeachBarParams):
        self.params = params
        self.num_states, self.num_actions, self.kernel_size = params.sizes()
        self.obs_dim = 3

    @property
    def has_random_reset(self) -> bool:
        return bool(self.params.common_noise) or self.params.bar_location is None

    def reset(self, key):
        return self.initial_state(self.noise.sample_reset(key))

    def initial_state(self, values):
        p = self.params
        bar = jnp.asarray(values.get("bar", p.bar_location), jnp.int32)
        x = jnp.arange(p.num_states)
        mu0 = jnp.where(x == bar, 0.0, 1.0 / (p.num_states - 1)).astype(jnp.float32)
        agg = BarAggregate(t=jnp.zeros((), jnp.int32), z=jnp.ones((), jnp.float32), bar=bar)
        return agg, mu0

    def _legal(self, x, y, bar):
        """Stop in front of the bar: nobody steps onto or across it."""
        return jnp.where(
            (x < bar) & (bar <= y), bar - 1, jnp.where((x > bar) & (bar >= y), bar + 1, y)
        )

    # Off the bar, a move stops on the same side of it as it started, so the noise after
    # it depends on the position reached alone; from the bar itself (no mass there from
    # mu_0 on, but the recursions cover every state) neither the move nor the noise is
    # stopped. So the move goes to one of S + A intermediate states: the S positions,
    # then the A positions reached from the bar.
    def move_and_noise(self, agg):
        p = self.params
        S, hi = p.num_states, p.num_states - 1
        x = jnp.arange(S, dtype=jnp.int32)
        a = jnp.asarray(self.action_values(), jnp.int32)
        d = self._legal(x[:, None], jnp.clip(x[:, None] + a, 0, hi), agg.bar)
        moves = jnp.where(x[:, None] == agg.bar, S + jnp.arange(len(a)), d)
        at = jnp.concatenate([x, jnp.clip(agg.bar + a, 0, hi)])  # [S + A] positions
        side = jnp.concatenate([x, jnp.full_like(a, agg.bar)])  # where each started
        if not p.idio_noise:
            return moves, at[:, None]
        delta = jnp.asarray(p.noise_atoms, jnp.int32)
        return moves, self._legal(side[:, None], jnp.clip(at[:, None] + delta, 0, hi), agg.bar)

    def next_aggregate(self, key, agg):
        # the closure coin is sampled at every step and kept at t + 1 = T // 2 only
        return self.noise.advance(key, agg._replace(t=agg.t + 1))

    def reward(self, agg, mu, agg_next, mu_next):
        p = self.params
        S = p.num_states
        dist = jnp.abs(agg.bar - jnp.arange(S)).astype(jnp.float32)[:, None]
        a = jnp.asarray(self.action_values(), jnp.float32)[None, :]
        closing = (dist == 1.0) & (agg_next.z == 0.0)
        r = -dist * agg.z - S * closing - jnp.abs(a) / S
        if p.crowd_aversion:
            r = r - p.crowd_aversion * jnp.log(mu + 1e-8)[:, None]
        # the terminal reward has the same form as the step reward
        return r

    def raw_observation(self, agg, mu):
        mean = jnp.dot(mu, jnp.arange(self.num_states, dtype=jnp.float32))
        return jnp.stack([mean, agg.z, agg.bar.astype(jnp.float32)])

    def observation(self, agg, mu):
        S = self.num_states
        mean, z, bar = self.raw_observation(agg, mu)
        return jnp.stack([1.0 - mean / S, z, 1.0 - bar / S])
