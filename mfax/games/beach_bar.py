"""Beach bar 1D (docs/games.md#beach_bar_1d)."""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from mfax.games.base import GameParams, check_probabilities, deterministic_row
from mfax.games.grid1d import Grid1DGame


@dataclasses.dataclass(frozen=True)
class BeachBarParams(GameParams):
    game_name = "beach_bar_1d"

    num_states: int = 101
    horizon: int = 30
    #: fixed bar position, or None for uniform on floor(S/4)..ceil(3S/4)-1 at reset
    bar_location: Optional[int] = None
    crowd_aversion: float = 0.0
    common_noise: bool = True
    idio_noise: bool = True
    #: actions are the integers -max_action..max_action
    max_action: int = 5
    noise_atoms: tuple[int, ...] = (-2, -1, 0, 1, 2)
    noise_probs: tuple[float, ...] = (0.05, 0.1, 0.7, 0.1, 0.05)

    def bar_range(self) -> tuple[int, int]:
        """Inclusive range of random bar locations."""
        return self.num_states // 4, math.ceil(0.75 * self.num_states) - 1

    def validate(self) -> None:
        if self.num_states < 3:
            self.fail("num_states", "an integer >= 3")
        if self.horizon < 1:
            self.fail("horizon", "an integer >= 1")
        if self.max_action < 0:
            self.fail("max_action", "an integer >= 0")
        if self.bar_location is not None and not 0 <= self.bar_location < self.num_states:
            self.fail("bar_location", f"null (random) or an integer in 0..{self.num_states - 1}")
        if self.crowd_aversion < 0:
            self.fail("crowd_aversion", "a number >= 0")
        check_probabilities(self, "noise_atoms", "noise_probs")


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
        self.num_states, self.num_actions, self.kernel_size = self.sizes(params)
        self.obs_dim = 3

    @property
    def has_random_reset(self) -> bool:
        return bool(self.params.common_noise) or self.params.bar_location is None

    def reset(self, key):
        p = self.params
        if p.bar_location is None:
            lo, hi = p.bar_range()
            bar = jax.random.randint(key, (), lo, hi + 1, dtype=jnp.int32)
        else:
            bar = jnp.asarray(p.bar_location, jnp.int32)
        x = jnp.arange(p.num_states)
        mu0 = jnp.where(x == bar, 0.0, 1.0 / (p.num_states - 1)).astype(jnp.float32)
        agg = BarAggregate(t=jnp.zeros((), jnp.int32), z=jnp.ones((), jnp.float32), bar=bar)
        return agg, mu0

    def _legal(self, x, y, bar):
        """Stop in front of the bar: nobody steps onto or across it."""
        return jnp.where((x < bar) & (bar <= y), bar - 1,
                         jnp.where((x > bar) & (bar >= y), bar + 1, y))

    def kernel(self, agg, mu):
        p = self.params
        hi = p.num_states - 1
        x = jnp.arange(p.num_states, dtype=jnp.int32)[:, None]
        a = jnp.asarray(self.action_values(), jnp.int32)[None, :]
        d = self._legal(x, jnp.clip(x + a, 0, hi), agg.bar)
        if not p.idio_noise:
            return deterministic_row(d)
        delta = jnp.asarray(p.noise_atoms, jnp.int32)
        nxt = self._legal(x[..., None], jnp.clip(d[..., None] + delta, 0, hi), agg.bar)
        probs = jnp.broadcast_to(jnp.asarray(p.noise_probs, jnp.float32), nxt.shape)
        return nxt.astype(jnp.int32), probs

    def next_aggregate(self, key, agg):
        t_next = agg.t + 1
        if self.params.common_noise:
            flip = jax.random.bernoulli(key).astype(jnp.float32)
            z_next = jnp.where(t_next == self.params.horizon // 2, flip, agg.z)
        else:
            z_next = agg.z
        return agg._replace(t=t_next, z=z_next)

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
