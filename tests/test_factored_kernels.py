"""The factored kernels (macro: wealth rows, then the income transition; the grid games
-- linear-quadratic, the beach bar, the crowd ring: the move, then the noise from where
it ends) against the games' dense kernel rows: the expectation, the push-forward, the
training loss and gradient, and the exploitability agree to float rounding."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import macro_agg

import mfax
from mfax.dynamics import expectation, push_forward, rollout_fn
from mfax.evaluation import evaluate_policy, expected_return
from mfax.games.base import ClockAggregate, Game
from mfax.games.beach_bar import BarAggregate
from mfax.games.linear_quadratic import LQAggregate
from mfax.policies import MeanFieldPolicy, _table_apply

SMALL = {
    "macro": dict(num_wealth=10, num_income=3, num_actions=4),
    "linear_quadratic": dict(
        num_states=15, max_action=2, horizon=12, push_early_end=4, push_late_start=8
    ),
    "beach_bar_1d": dict(num_states=12, max_action=3, horizon=12),
    "crowd_ring": dict(
        num_states=9,
        max_action=2,
        horizon=12,
        noise_atoms=(-2, 0, 1, 3),
        noise_probs=(0.1, 0.4, 0.3, 0.2),
    ),
}
FACTORED = sorted(SMALL)


def dense(game: Game) -> Game:
    """``game`` with the base class's dense `kernel_*` (the path before factoring)."""
    methods = ("kernel_rows", "kernel_expectation", "kernel_push")
    cls = type("Dense" + type(game).__name__, (type(game),), {m: getattr(Game, m) for m in methods})
    return cls(game.params)


def games(name: str, idio_noise: bool, **kw):
    g = mfax.make_game(name, idio_noise=idio_noise, **{**SMALL[name], **kw})
    return g, dense(g)


def aggregate(name: str, t: int, z: float, bar: int = 0):
    if name == "macro":
        return macro_agg(t, z)
    t, z = jnp.asarray(t, jnp.int32), jnp.asarray(z, jnp.float32)
    if name == "beach_bar_1d":
        return BarAggregate(t=t, z=z, bar=jnp.asarray(bar, jnp.int32))
    if name == "crowd_ring":
        return ClockAggregate(t=t, z=z)
    return LQAggregate(t=t, z=z)


# (t, z[, bar]) of each environment: linear-quadratic's push is -z before step 4, +z
# after 8; the bar 2 places from either end of the beach (where moves of 3 are clipped
# too) and in the middle
AGGREGATES = {
    "macro": ((3, -0.2), (3, 0.25), (3, 0.0)),
    "linear_quadratic": ((2, 1.0), (9, -1.0), (5, 1.0)),
    "beach_bar_1d": ((2, 1.0, 2), (7, 0.0, 9), (5, 1.0, 6)),
    "crowd_ring": ((0, 0.0), (4, 0.0), (11, 0.0)),
}


def batched(game, seed: int, E: int = 2):
    """Aggregates, mean fields and kernels of ``E`` environments, with a random policy."""
    rng = np.random.default_rng(seed)
    S, A = game.num_states, game.num_actions
    mu = jnp.asarray(rng.dirichlet(np.ones(S), size=E), jnp.float32)
    pi = jnp.asarray(rng.dirichlet(np.ones(A), size=(E, S)), jnp.float32)
    aggs = [aggregate(game.name, *args) for args in AGGREGATES[game.name][:E]]
    agg = jax.tree_util.tree_map(lambda *x: jnp.stack(x), *aggs)
    return agg, mu, pi, rng


def factored_and_dense(game):
    """``(agg, mu, pi, values) -> ((expectation, push) factored, (expectation, push) dense)``
    as one compiled program (run eagerly, each small operation would compile on its own)."""

    @jax.jit
    def run(agg, mu, pi, values):
        rows = jax.vmap(game.kernel_rows)(agg, mu)
        idx, prob = jax.vmap(game.kernel)(agg, mu)
        factored = (game.kernel_expectation(values, rows), game.kernel_push(mu, pi, rows))
        return factored, (expectation(values, idx, prob), push_forward(mu, pi, idx, prob))

    return run


@pytest.mark.parametrize("name", FACTORED)
@pytest.mark.parametrize("idio_noise", [True, False])
def test_factored_expectation_and_push_equal_dense(name, idio_noise):
    game, _ = games(name, idio_noise)
    agg, mu, pi, rng = batched(game, 0, E=3)
    moves = jax.eval_shape(jax.vmap(game.kernel_rows), agg, mu)[0]
    # macro: two wealth points whatever the income shocks; the grid games: one move
    assert moves.shape == (3, game.num_states, game.num_actions) + ((2,) if name == "macro" else ())
    run = factored_and_dense(game)
    for lead in ((), (3,), (2, 3)):
        values = jnp.asarray(rng.normal(size=lead + mu.shape) * 10 + 5, jnp.float32)
        (got, push), (want, push_want) = run(agg, mu, pi, values)
        assert got.shape == want.shape == lead + pi.shape
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
    # the push does not depend on the values: the last call's
    np.testing.assert_allclose(push, push_want, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(jnp.sum(push, -1), 1.0, rtol=1e-6)


def test_income_transition_is_the_kernels():
    """`income_transition` is the income part of the dense rows (clipped at both ends)."""
    game, _ = games("macro", True, income_atoms=(-1, 0, 2), income_probs=(0.2, 0.5, 0.3))
    np.testing.assert_allclose(
        game.income_transition,
        [[0.7, 0.0, 0.3], [0.2, 0.5, 0.3], [0.0, 0.2, 0.8]],
        atol=1e-7,
    )
    agg, mu, pi, rng = batched(game, 1)
    values = jnp.asarray(rng.normal(size=mu.shape), jnp.float32)
    (got, push), (want, push_want) = factored_and_dense(game)(agg, mu, pi, values)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(push, push_want, atol=1e-7)


def table_policy():
    return MeanFieldPolicy(_table_apply)


@pytest.mark.parametrize(
    "name, idio_noise",
    [
        pytest.param("macro", True, marks=pytest.mark.slow),  # ~14 s; CI runs it
        ("macro", False),
        ("linear_quadratic", True),
        ("linear_quadratic", False),
        ("beach_bar_1d", True),
        ("beach_bar_1d", False),
        ("crowd_ring", True),
        ("crowd_ring", False),
    ],
)
def test_training_loss_gradient_and_exploitability_equal_dense(name, idio_noise):
    factored, plain = games(name, idio_noise, horizon=12 if name != "macro" else 6)
    table = mfax.policies.random_policy(factored, jax.random.PRNGKey(3))
    key = jax.random.PRNGKey(4)

    def loss(game):  # the SPG loss: the return along the push-forward rollout
        run = rollout_fn(game, table_policy(), 3)
        return jax.jit(jax.value_and_grad(lambda p: expected_return(run(p, key), 0.95)))

    (lf, gf), (ld, gd) = loss(factored)(table), loss(plain)(table)
    np.testing.assert_allclose(lf, ld, rtol=1e-6)
    np.testing.assert_allclose(gf, gd, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(gd))))

    rf = evaluate_policy(factored, table, key, num_envs=3)
    rd = evaluate_policy(plain, table, key, num_envs=3)
    np.testing.assert_allclose(rf.trajectory.mu, rd.trajectory.mu, rtol=1e-5, atol=1e-8)
    for metric in ("exploitability", "policy_return", "best_response_return"):
        np.testing.assert_allclose(
            getattr(rf, metric), getattr(rd, metric), rtol=1e-5, err_msg=metric
        )
    np.testing.assert_allclose(rf.policy_value, rd.policy_value, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(rf.best_response_actions, rd.best_response_actions)


@pytest.mark.parametrize("idio_noise", [True, False])
def test_crowd_ring_kernel_wraps_around(idio_noise):
    """The ring's composed rows are ``(x + a + delta) mod S`` with the noise's
    probabilities (OpenSpiel's crowd_modelling)."""
    game, _ = games("crowd_ring", idio_noise)
    p = game.params
    S = p.num_states
    idx, prob = game.kernel(aggregate("crowd_ring", 3, 0.0), jnp.full((S,), 1.0 / S))
    x = np.arange(S)[:, None, None]
    a = np.arange(-p.max_action, p.max_action + 1)[None, :, None]
    delta = np.asarray(p.noise_atoms if idio_noise else (0,))
    np.testing.assert_array_equal(idx, (x + a + delta) % S)
    want = np.broadcast_to(p.noise_probs if idio_noise else (1.0,), idx.shape)
    np.testing.assert_allclose(prob, want, rtol=1e-7)
