"""Learning parity with the published code (issue 10, docs/LEARNING.md).

On the linear-quadratic game the equilibrium depends on time and on the
common noise revealed at t = 1, so RSPG has to read both from the GRU's
history. With the published network layout RSPG leaves the plateau near
exploitability 185 within 400 iterations at the published learning rate;
mfax's former layout (one more MLP layer, activated embeddings, raw GRU
state) stayed on it (187 and 185 for these two seeds).
"""

from __future__ import annotations

import numpy as np
import pytest

from mfax.multiseed import train_seeds
from mfax.training import TrainConfig


@pytest.mark.slow
def test_rspg_leaves_the_linear_quadratic_plateau():
    config = TrainConfig(
        game="linear_quadratic",
        algo="rspg",
        lr=1e-3,
        num_iterations=400,
        eval_every=200,
        num_envs=8,
        eval_num_envs=8,
    )
    results = train_seeds(config, [0, 1], progress=False)
    first = [r.curve[0]["exploitability"] for r in results]
    final = np.asarray([r.curve[-1]["exploitability"] for r in results])
    assert min(first) > 1000  # the untrained network is far from equilibrium
    assert np.all(final >= 0)
    # the former layout ended at 187 and 185; one seed of the published layout may still
    # be on the plateau after 400 iterations, so the bound is on the better seed and the mean
    assert final.min() < 60, final
    assert final.mean() < 120, final
