"""What the 1-D grid games (linear-quadratic, beach bar, crowd ring) share: positions
``0..num_states-1``, moves ``-max_action..max_action``, then an idiosyncratic noise
with ``noise_atoms`` (docs/games.md)."""

from __future__ import annotations

import abc

import jax
import jax.numpy as jnp
import numpy as np

from mfax.dynamics import expectation_two_stage, push_forward_two_stage
from mfax.games.base import Game


class Grid1DGame(Game):
    """A game on positions ``0..S-1`` whose actions are moves ``-m..m``.

    Its kernel comes in two stages (`move_and_noise`): each (state, action) moves to an
    intermediate state, and the noise after the move depends on that state alone. The
    recursions use it factored, gathering and scatter-adding ``E S A + E M K`` entries
    per step instead of the dense rows' ``E S A K`` (docs/PERFORMANCE.md, "The grid
    games' kernels factored"); `kernel` composes the two stages into those rows.
    """

    @abc.abstractmethod
    def move_and_noise(self, agg) -> tuple[jax.Array, jax.Array]:
        """``(moves[S, A], noise[M, K])``: each (state, action)'s intermediate state in
        ``0..M-1``, and each intermediate state's ``K`` successors, drawn with
        `noise_probs` (one successor without idiosyncratic noise)."""

    @property
    def noise_probs(self) -> jax.Array:
        """``[K]``: the probability of each noise successor."""
        p = self.params
        return jnp.asarray(p.noise_probs if p.idio_noise else (1.0,), jnp.float32)

    def kernel(self, agg, mu):
        moves, noise = self.move_and_noise(agg)
        return noise[moves], jnp.broadcast_to(self.noise_probs, moves.shape + noise.shape[-1:])

    def kernel_rows(self, agg, mu):
        return self.move_and_noise(agg)

    def kernel_expectation(self, values, rows):
        return expectation_two_stage(values, *rows, self.noise_probs)

    def kernel_push(self, mu, pi, rows):
        return push_forward_two_stage(mu, pi, *rows, self.noise_probs)

    #: the ``long_name`` of the position coordinate in trajectory files
    position_name = "position"

    def action_values(self):
        m = self.params.max_action
        return np.arange(-m, m + 1, dtype=np.float32)

    def state_coords(self):
        return {
            "x": (
                np.arange(self.num_states, dtype=np.float32),
                {"long_name": self.position_name, "units": "1"},
            )
        }

    def state_features(self):
        return (np.arange(self.num_states, dtype=np.float32) / (self.num_states - 1))[:, None]
