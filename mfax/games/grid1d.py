"""What the two 1-D grid games (linear-quadratic, beach bar) share: positions
``0..num_states-1``, moves ``-max_action..max_action`` plus an idiosyncratic
noise with ``noise_atoms`` (docs/games.md)."""

from __future__ import annotations

import numpy as np

from mfax.games.base import Game


class Grid1DGame(Game):
    """A game on positions ``0..S-1`` whose actions are moves ``-m..m``."""

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
