"""Susceptible-infected-susceptible epidemic with social distancing
(docs/games.md#susceptible_infected), after MFGLib's ``susceptible_infected``
(Cui & Koeppl 2021, "Approximately solving mean field games via entropy-regularized
deep reinforcement learning", AISTATS).

Two states (0 susceptible, 1 infected) and two actions (0 go out, 1 distance).
A susceptible agent who goes out is infected with probability
``infection_rate * mu_t(infected)``; one who distances stays susceptible; an
infected agent recovers with probability ``recovery_rate`` whatever it does.
Distancing and being infected cost per step.  The infection risk grows with
the infected share, so the transitions depend on the mean field (which
`make_tabular_game` does not allow): a benchmark game the tabular solvers
share with MFGLib.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mfax.games.base import ClockAggregate, Game
from mfax.games.params import SusceptibleInfectedParams

SUSCEPTIBLE, INFECTED = 0, 1
GO_OUT, DISTANCE = 0, 1


class SusceptibleInfected(Game):
    name = "susceptible_infected"
    default_discount = 1.0  # MFGLib's games are undiscounted
    obs_names = ("time",)

    def __init__(self, params: SusceptibleInfectedParams):
        self.params = params
        self.num_states, self.num_actions, self.kernel_size = params.sizes()
        self.obs_dim = 1

    def reset(self, key):
        agg = ClockAggregate.start()
        i0 = self.params.initial_infected
        return agg, jnp.asarray([1.0 - i0, i0], jnp.float32)

    def kernel(self, agg, mu):
        p = self.params
        infect = jnp.clip(p.infection_rate * mu[INFECTED], 0.0, 1.0)
        stay_infected = jnp.float32(1.0 - p.recovery_rate)
        # successors are always (susceptible, infected): K = 2
        to_infected = jnp.stack(
            [
                jnp.stack([infect, jnp.float32(0.0)]),  # susceptible: go out, distance
                jnp.stack([stay_infected, stay_infected]),  # infected: either action
            ]
        )
        prob = jnp.stack([1.0 - to_infected, to_infected], -1).astype(jnp.float32)
        idx = jnp.broadcast_to(jnp.arange(2, dtype=jnp.int32), (2, 2, 2))
        return idx, prob

    def next_aggregate(self, key, agg):
        return agg._replace(t=agg.t + 1)

    def reward(self, agg, mu, agg_next, mu_next):
        p = self.params
        infected = jnp.asarray([0.0, 1.0], jnp.float32)[:, None]
        distancing = jnp.asarray([0.0, 1.0], jnp.float32)[None, :]
        return -p.infection_cost * infected - p.distancing_cost * distancing

    def raw_observation(self, agg, mu):
        return agg.t.astype(jnp.float32)[None]

    def observation(self, agg, mu):
        return self.raw_observation(agg, mu) / self.horizon

    def action_values(self):
        return np.asarray([GO_OUT, DISTANCE], np.float32)

    def state_coords(self):
        return {
            "health": (
                np.asarray([SUSCEPTIBLE, INFECTED], np.float32),
                {"long_name": "0 susceptible, 1 infected", "units": "1"},
            )
        }

    def state_features(self):
        return np.asarray([[0.0], [1.0]], np.float32)
