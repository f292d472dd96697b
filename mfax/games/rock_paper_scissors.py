"""Generalised rock-paper-scissors (docs/games.md#rock_paper_scissors), MFGLib's
``rock_paper_scissors`` (after Shapley 1964's non-zero-sum variant, as in Cui & Koeppl
2021): states 0 start, 1 rock, 2 paper, 3 scissors; action ``a`` moves every agent to
state ``1 + a``; an agent in a hand's state earns against the crowd's hands

    rock: 2 mu(scissors) - mu(paper),  paper: 4 mu(rock) - 2 mu(scissors),
    scissors: 6 mu(paper) - 3 mu(rock).

Not monotone, with a unique mixed equilibrium in closed form (`equilibrium_shares`):
a benchmark game the tabular solvers share with MFGLib.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from mfax.games.base import ClockAggregate, Game
from mfax.games.params import RockPaperScissorsParams

#: PAYOFF[i, j]: what hand i earns per unit of mass playing hand j (rock, paper, scissors)
PAYOFF = np.asarray([[0.0, -1.0, 2.0], [4.0, 0.0, -2.0], [-3.0, 6.0, 0.0]], np.float32)


def equilibrium_shares() -> np.ndarray:
    """The mixed equilibrium (rock, paper, scissors): every hand earns the same,
    ``PAYOFF @ x = v 1``, ``sum x = 1`` (solved exactly: 26/77, 20/77, 31/77)."""
    A = np.zeros((4, 4))
    A[:3, :3], A[:3, 3], A[3, :3] = PAYOFF, -1.0, 1.0
    return np.linalg.solve(A, [0.0, 0.0, 0.0, 1.0])[:3]


class RockPaperScissors(Game):
    name = "rock_paper_scissors"
    default_discount = 1.0  # MFGLib's games are undiscounted
    obs_names = ("time",)

    def __init__(self, params: RockPaperScissorsParams):
        self.params = params
        self.num_states, self.num_actions, self.kernel_size = params.sizes()
        self.obs_dim = 1

    def reset(self, key):
        agg = ClockAggregate.start()
        return agg, jnp.asarray(self.params.initial_distribution, jnp.float32)

    def kernel(self, agg, mu):
        hand = jnp.arange(1, 4, dtype=jnp.int32)  # action a -> state 1 + a, from any state
        idx = jnp.broadcast_to(hand[None, :, None], (4, 3, 1))
        return idx, jnp.ones((4, 3, 1), jnp.float32)

    def next_aggregate(self, key, agg):
        return agg._replace(t=agg.t + 1)

    def reward(self, agg, mu, agg_next, mu_next):
        earn = jnp.asarray(PAYOFF) @ mu[1:]  # [3] per hand
        return jnp.broadcast_to(jnp.concatenate([jnp.zeros((1,)), earn])[:, None], (4, 3))

    def raw_observation(self, agg, mu):
        return agg.t.astype(jnp.float32)[None]

    def observation(self, agg, mu):
        return self.raw_observation(agg, mu) / self.horizon

    def action_values(self):
        return np.arange(3, dtype=np.float32)

    def state_coords(self):
        return {
            "hand": (
                np.arange(4, dtype=np.float32),
                {"long_name": "0 start, 1 rock, 2 paper, 3 scissors", "units": "1"},
            )
        }

    def state_features(self):
        return (np.arange(4, dtype=np.float32) / 3.0)[:, None]
