"""Mean-field dynamics derived from a game's kernel: exact push-forward and sampled agents.

Both updates read the same kernel rows ``(idx[S, A, K], prob[S, A, K])``:
the push-forward update scatter-adds ``mu[s] pi[s, a] prob[s, a, k]`` onto
``idx[s, a, k]``; the sample-based update lets every agent draw an action
from ``pi[s]`` and a successor from its kernel row.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from mfax.games.base import Game, deterministic_row
from mfax.policies import MeanFieldPolicy, as_policy
from mfax.sharding import shard_envs


class Trajectory(NamedTuple):
    """A rollout of ``E`` environments over ``T`` steps (time-major arrays)."""

    mu: jax.Array  # [T, E, S] mean field at t = 0..T-1
    mu_final: jax.Array  # [E, S] mean field at t = T
    obs: jax.Array  # [T, E, d] normalised shared observation (the policy input)
    raw_obs: jax.Array  # [T, E, d] shared observation in natural units
    common_noise: jax.Array  # [T, E] the common noise z_t
    aggregate: Any  # the game's aggregate state, each leaf [T, E]
    policy: jax.Array  # [T, E, S, A] action probabilities used
    reward: jax.Array  # [T, E, S, A] rewards R_t given the mean-field path

    @property
    def mu0(self) -> jax.Array:
        return self.mu[0]


# Kernel rows are batched over environments: ``idx, prob [E, S, A, K]``.  For
# speed on CPU the batch is folded into flat indices (``idx + e * S``), so
# that XLA sees one scalar gather/scatter rather than a batched one, and the
# sum over the K successors is unrolled over contiguous K-major slices:
# XLA:CPU reduces a short axis of a large array tens of times slower
# (measured on the macro game: 35 ms -> 1 ms per backward step).


def _flat_offsets(idx: jax.Array, batch: int, num_states: int) -> jax.Array:
    """``idx[E, S, A, K]`` -> flat indices into ``[batch * E * S]`` values, ``[K, batch, E, S, A]``."""
    E = idx.shape[0]
    base = (jnp.arange(batch * E, dtype=jnp.int32) * num_states).reshape(batch, E, 1, 1)
    return jnp.moveaxis(idx, -1, 0)[:, None] + base


def push_forward(
    mu: jax.Array, pi: jax.Array, idx: jax.Array, prob: jax.Array, num_out: int | None = None
) -> jax.Array:
    """Exact update ``mu'[s'] = sum_{s,a,k: idx[s,a,k]=s'} mu[s] pi[s,a] prob[s,a,k]``.

    Shapes: ``mu[E, S]``, ``pi[E, S, A]``, ``idx, prob[E, S, A, K]`` -> ``[E, num_out]``
    (``num_out`` defaults to ``S``: a factored kernel's first stage may push onto
    another set of states).
    """
    E = mu.shape[0]
    S = mu.shape[1] if num_out is None else num_out
    weights = mu[:, :, None, None] * pi[..., None] * prob
    flat = idx + (jnp.arange(E, dtype=jnp.int32) * S)[:, None, None, None]
    # The rows' indices lie in [0, S) by construction. Unsigned, no wrap of negative
    # indices (a select over every index, each step), and the promise spares the
    # gradient's gather its bounds mask: linear-quadratic SPG / RSPG 0.94-0.96x per
    # iteration. 16 bits where E * S fits: the rollout scan stores these indices for the
    # gradient every step, and half the bytes to zero-fill and write is macro SPG /
    # RSPG 0.93 / 0.97x (docs/PERFORMANCE.md). The sums are the same, bit for bit.
    # Only on one CPU device: XLA's SPMD partitioner aborts on 16-bit scatter indices,
    # and other backends are unmeasured.
    narrow = _NARROW_INDICES and E * S <= 2**16 and _one_cpu_device()
    index_type = jnp.uint16 if narrow else jnp.uint32
    flat = flat.astype(index_type).reshape(-1, 1)
    out = lax.scatter_add(
        jnp.zeros(E * S, mu.dtype),
        flat,
        weights.reshape(-1),
        _SCATTER_ROWS,
        mode=lax.GatherScatterMode.PROMISE_IN_BOUNDS,
    )
    return out.reshape(E, S)


_NARROW_INDICES = 1  # 0: 32-bit indices everywhere (the tests' reference)


def _one_cpu_device() -> bool:
    return jax.default_backend() == "cpu" and jax.device_count() == 1


_SCATTER_ROWS = lax.ScatterDimensionNumbers(
    update_window_dims=(), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,)
)


def expectation(values: jax.Array, idx: jax.Array, prob: jax.Array) -> jax.Array:
    """``E[values(s')]`` for every kernel row.

    ``values[..., E, S]`` (any leading axes share the kernel) -> ``[..., E, S, A]``.
    """
    lead, S = values.shape[:-2], values.shape[-1]
    gathered = values.reshape(-1)[_flat_offsets(idx, math.prod(lead), S)]  # [K, batch, E, S, A]
    prob_k = jnp.moveaxis(prob, -1, 0)
    out = sum(prob_k[k] * gathered[k] for k in range(idx.shape[-1]))
    return out.reshape(lead + out.shape[1:])


def push_forward_two_stage(
    mu: jax.Array, pi: jax.Array, moves: jax.Array, noise_idx: jax.Array, noise_prob: jax.Array
) -> jax.Array:
    """`push_forward` through a kernel in two stages: each (state, action) moves to one
    of ``M`` intermediate states, ``moves[E, S, A]``, and each intermediate state has a
    row of ``K`` successors, ``noise_idx[E, M, K]`` with probabilities ``noise_prob``
    (broadcast to it). The rows ``noise_idx[moves]`` to float rounding, in
    ``E S A + E M K`` scatter-adds instead of ``E S A K``."""
    moved = push_forward(mu, pi, *deterministic_row(moves), num_out=noise_idx.shape[-2])
    one = jnp.ones(moved.shape + (1,), moved.dtype)
    return push_forward(moved, one, *_one_action(noise_idx, noise_prob), num_out=mu.shape[-1])


def expectation_two_stage(
    values: jax.Array, moves: jax.Array, noise_idx: jax.Array, noise_prob: jax.Array
) -> jax.Array:
    """`expectation` through the two stages of `push_forward_two_stage`:
    ``values[..., E, S]`` -> ``[..., E, S, A]``."""
    after_move = expectation(values, *_one_action(noise_idx, noise_prob))[..., 0]
    return expectation(after_move, *deterministic_row(moves))


def _one_action(noise_idx: jax.Array, noise_prob: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rows ``[E, M, K]`` as the kernel rows ``[E, M, 1, K]`` of a one-action game."""
    return noise_idx[..., None, :], jnp.broadcast_to(noise_prob, noise_idx.shape)[..., None, :]


def _inverse_cdf(key: jax.Array, rows: jax.Array) -> jax.Array:
    """One categorical draw per row of ``rows[..., n]`` (rows need not be normalised)."""
    cdf = jnp.cumsum(rows, axis=-1)
    u = jax.random.uniform(key, rows.shape[:-1]) * cdf[..., -1]
    return jnp.minimum(jnp.sum(cdf <= u[..., None], axis=-1), rows.shape[-1] - 1)


def sample_initial(key: jax.Array, mu: jax.Array, num_agents: int) -> jax.Array:
    """``num_agents`` agents' states ``int32[E, N]`` drawn from each environment's ``mu[E, S]``."""
    E, S = mu.shape
    return jax.vmap(lambda k, m: jax.random.choice(k, S, (num_agents,), p=m))(
        jax.random.split(key, E), mu
    ).astype(jnp.int32)


def sample_next(key, states, actions, idx, prob):
    """Each agent's successor drawn from its kernel row: ``states, actions[E, N]``,
    ``idx, prob[E, S, A, K]`` -> next states ``[E, N]`` (the one successor sampler of the
    sampled dynamics and of the model-free learners)."""
    E, S, A, K = idx.shape
    cell = (states + (jnp.arange(E, dtype=jnp.int32) * S)[:, None]) * A + actions
    choice = _inverse_cdf(key, prob.reshape(-1, K)[cell])
    return idx.reshape(-1)[cell * K + choice]


def sample_successors(key, states, pi, idx, prob):
    """Each agent draws an action from ``pi[state]`` and a successor from its kernel row.

    ``states[E, N]``, ``pi[E, S, A]``, ``idx, prob[E, S, A, K]`` -> (next states, actions).
    """
    E, S, A = pi.shape
    k_act, k_next = jax.random.split(key)
    rows = states + (jnp.arange(E, dtype=jnp.int32) * S)[:, None]  # flat (env, state)
    actions = _inverse_cdf(k_act, pi.reshape(E * S, A)[rows])
    return sample_next(k_next, states, actions, idx, prob), actions


def empirical(states: jax.Array, num_states: int) -> jax.Array:
    """Empirical distributions ``[E, S]`` of agents' states ``[E, N]``."""
    E, N = states.shape
    flat = (states + (jnp.arange(E, dtype=jnp.int32) * num_states)[:, None]).reshape(-1)
    counts = jnp.zeros(E * num_states, jnp.float32).at[flat].add(1.0)
    return counts.reshape(E, num_states) / N


def rollout_fn(game: Game, policy: MeanFieldPolicy, num_envs: int, num_agents: int | None = None):
    """A pure, jit-able ``(params, key) -> Trajectory`` for this game and policy.

    Differentiation holds the population constant (stop-gradient): its mean field
    enters the observations, kernels, rewards and noise as a constant, as structural
    policy gradients require.  With the exact push-forward, ``Trajectory.mu`` itself
    stays differentiable as the state distribution of one agent playing the policy on
    that frozen path (equal to the population's in value), so that
    `mfax.evaluation.discounted_returns` is the agent's return as a function of its
    policy.
    """
    S = game.num_states
    sampled = num_agents is not None

    def run(params, key):
        k_reset, k_init, k_steps = jax.random.split(key, 3)
        agg, mu = jax.vmap(game.reset)(jax.random.split(k_reset, num_envs))
        carry = jax.vmap(lambda _: policy.initial_carry())(jnp.arange(num_envs))
        # several devices: the environments are split over them (mfax.sharding)
        agg, mu, carry = shard_envs((agg, mu, carry), num_envs)
        if sampled:
            states = sample_initial(k_init, mu, num_agents)
            mu = empirical(states, S)
        else:
            states = jnp.zeros((num_envs, 0), jnp.int32)

        def step(state, key_t):
            agg, mu, carry, states = state
            pop = lax.stop_gradient(mu)  # the population: a constant for differentiation
            obs, raw_obs, pi, carry = policy_step(game, policy, params, agg, pop, carry)
            k_noise, k_agents = jax.random.split(key_t)
            agg_next = jax.vmap(game.next_aggregate)(jax.random.split(k_noise, num_envs), agg)
            if sampled:
                rows = jax.vmap(game.kernel)(agg, pop)
                states, _ = sample_successors(k_agents, states, lax.stop_gradient(pi), *rows)
                mu_next = empirical(states, S)
            else:  # the agent's own distribution, differentiable in pi
                mu_next = next_mean_field(game, mu, pi, agg, pop)
            reward = jax.vmap(game.reward)(agg, pop, agg_next, lax.stop_gradient(mu_next))
            record = (mu, obs, raw_obs, agg.z, agg, pi, reward)
            return (agg_next, mu_next, carry, states), record

        (_, mu_final, _, _), rec = lax.scan(
            step, (agg, mu, carry, states), jax.random.split(k_steps, game.horizon)
        )
        return trajectory_of(rec, mu_final)

    return run


def policy_step(
    game: Game,
    policy: MeanFieldPolicy,
    params: Any,
    agg: Any,
    mu: jax.Array,
    carry: Any,
    params_axis: int | None = None,
) -> tuple:
    """What every rollout step starts with, for a batch of environments: the normalised
    and raw observations, and the policy's probabilities ``[E, S, A]`` and new carry.
    ``params_axis=0``: ``params`` has one entry per environment on its leading axis (the
    tabular solvers' per-path tables)."""
    obs = jax.vmap(game.observation)(agg, mu)
    raw_obs = jax.vmap(game.raw_observation)(agg, mu)
    # under jax.checkpoint the backward pass recomputes the network's activations instead
    # of the rollout scan storing them for every step ([T, E, S, width] floats per layer):
    # macro SPG's iteration 0.8x (docs/PERFORMANCE.md); no effect without a gradient
    apply = jax.checkpoint(jax.vmap(policy.apply, (params_axis, 0, 0, 0)))
    pi, carry = apply(params, carry, obs, agg.t)
    return obs, raw_obs, pi, carry


def next_mean_field(game: Game, mu: jax.Array, pi: jax.Array, agg: Any, pop: jax.Array):
    """The exact push-forward of ``mu[E, S]`` under ``pi[E, S, A]`` through the kernel
    at ``(agg, pop)`` (``game.kernel_rows`` then ``game.kernel_push``).

    Where the game asks for it (``game.recompute_kernel_rows``), a gradient recomputes
    the kernel rows in its backward pass instead of the rollout scan storing them for
    every step (``[T, E, S, A, K]`` indices and probabilities); no effect without a
    gradient."""

    def push(mu, pi, agg, pop):
        return game.kernel_push(mu, pi, jax.vmap(game.kernel_rows)(agg, pop))

    if game.recompute_kernel_rows:
        push = jax.checkpoint(push)
    return push(mu, pi, agg, pop)


def trajectory_of(rec: tuple, mu_final: jax.Array) -> Trajectory:
    """The `Trajectory` of a scan's records ``(mu, obs, raw_obs, z, aggregate, policy,
    reward)``, each time-major."""
    mu, obs, raw_obs, z, agg, pi, reward = rec
    return Trajectory(
        mu=mu,
        mu_final=mu_final,
        obs=obs,
        raw_obs=raw_obs,
        common_noise=z,
        aggregate=agg,
        policy=pi,
        reward=reward,
    )


def rollout(
    game: Game, policy: Any, key: jax.Array, num_envs: int, num_agents: int | None = None
) -> Trajectory:
    """Roll out ``num_envs`` environments with ``policy``.

    ``num_agents=None`` runs the exact push-forward update; an integer runs
    the sample-based update with that many agents per environment, ``mu``
    being their empirical distribution.
    """
    _check_sizes(num_envs, num_agents)
    pol = as_policy(policy, game)
    return _jitted_rollout(game, pol.apply, pol.initial_carry, num_envs, num_agents)(
        pol.params, key
    )


def _check_sizes(num_envs: int, num_agents: int | None = None) -> None:
    if not isinstance(num_envs, int) or isinstance(num_envs, bool) or num_envs < 1:
        raise ValueError(f"num_envs = {num_envs!r} is not allowed; expected an integer >= 1")
    if num_agents is not None and (not isinstance(num_agents, int) or num_agents < 1):
        raise ValueError(
            f"num_agents = {num_agents!r} is not allowed; expected None (exact push-forward) "
            "or an integer >= 1"
        )


@functools.lru_cache(maxsize=64)
def _jitted_rollout(game, apply, initial_carry, num_envs, num_agents):
    policy = MeanFieldPolicy(apply, None, initial_carry)
    return jax.jit(rollout_fn(game, policy, num_envs, num_agents))
