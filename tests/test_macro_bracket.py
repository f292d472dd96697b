"""Macro's wealth bracket by arithmetic (`LogBracket`) finds exactly the interval and
weight that a search of the grid finds, bit for bit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mfax.games import make_game
from mfax.games.macro import LogBracket, log_grid


def _searched(grid: np.ndarray, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    g = jnp.asarray(grid)
    lo = jnp.clip(jnp.searchsorted(g, v, side="right") - 1, 0, len(grid) - 2)
    return lo, jnp.clip((v - g[lo]) / (g[lo + 1] - g[lo]), 0.0, 1.0)


def _probes(grid: np.ndarray, seed: int = 0) -> np.ndarray:
    """Every grid point, its float32 neighbours, midpoints and random values in range."""
    rng = np.random.default_rng(seed)
    v = np.concatenate(
        [
            grid,
            np.nextafter(grid, -np.inf),
            np.nextafter(grid, np.inf),
            (grid[1:] + grid[:-1]) / 2,
            rng.uniform(grid[0], grid[-1], 20_000),
            np.exp(rng.uniform(np.log(grid[0] + 1e-3), np.log(grid[-1]), 20_000)),  # log-spread
        ]
    )
    return np.clip(v, grid[0], grid[-1]).astype(np.float32)


@pytest.mark.parametrize(
    "n, bounds", [(2, (0.0, 99.0)), (6, (0.0, 99.0)), (30, (0.0, 99.0)), (200, (0.0, 99.0)),
                  (1000, (0.0, 99.0)), (50, (2.0, 50.0)), (5, (0.1, 2.0)), (4000, (0.0, 1e4))],
)  # fmt: skip
def test_bracket_equals_the_search(n, bounds):
    grid = log_grid(bounds, n)
    bracket = LogBracket.of(grid, bounds)
    assert bracket is not None
    v = jnp.asarray(_probes(grid))
    lo, w = jax.jit(bracket.rows)(v)
    lo_ref, w_ref = jax.jit(lambda x: _searched(grid, x))(v)
    np.testing.assert_array_equal(np.asarray(lo), np.asarray(lo_ref))
    np.testing.assert_array_equal(np.asarray(w).view(np.uint32), np.asarray(w_ref).view(np.uint32))


def test_a_grid_that_is_not_the_log_grid_is_searched():
    assert LogBracket.of(np.linspace(0.0, 99.0, 200, dtype=np.float32), (0.0, 99.0)) is None
    assert LogBracket.of(np.zeros(5, np.float32), (0.0, 99.0)) is None  # not increasing


@pytest.mark.parametrize("params", [{}, {"num_wealth": 30, "horizon": 4}])
def test_macro_kernel_is_the_same_with_and_without_the_bracket(params):
    game = make_game("macro", **params)
    assert game.wealth_bracket is not None
    searched = make_game("macro", **params)
    searched.wealth_bracket = None
    agg, _ = game.reset(jax.random.key(0))
    for seed in range(3):
        k1, k2 = jax.random.split(jax.random.key(seed))
        mu = jax.nn.softmax(3 * jax.random.normal(k1, (game.num_states,)))
        agg = agg._replace(z=0.2 * jax.random.normal(k2, ()))
        for method in ("kernel", "kernel_rows"):
            (i, p), (i_ref, p_ref) = (
                jax.jit(getattr(g, method))(agg, mu) for g in (game, searched)
            )
            np.testing.assert_array_equal(np.asarray(i), np.asarray(i_ref))
            np.testing.assert_array_equal(
                np.asarray(p).view(np.uint32), np.asarray(p_ref).view(np.uint32)
            )
