"""Deep Munchausen online mirror descent (D-MOMD, Lauriere et al. 2022).

A Q-network -- the mean-field network of `mfax.networks` with a categorical
head read as Q-values -- is trained from a replay buffer with the Munchausen
target (``tau`` temperature, ``alpha`` scaling, ``log_policy_clip`` = l0):

    y = r + alpha * clip(tau * log pi_tgt(a|s), l0, 0)
          + gamma * (1 - done) * sum_a' pi_tgt(a'|s') (Q_tgt(s', a') - tau * log pi_tgt(a'|s')),
    pi_tgt = softmax(Q_tgt / tau),

(Huber loss on ``Q(s, a) - y``).  The Munchausen bonus ``alpha * tau * log
pi`` makes the Q-network accumulate past Q-functions, which is online
mirror descent on the mean-field game (the policy of iteration k + 1 is the
softmax of the regularised sum of the Q's against mu_0..mu_k).  The policy
-- and the mean-field policy the outer loop rolls out, evaluates and saves
-- is ``softmax(Q / tau)``: the network with its (linear) head divided by
``tau``, so it is stored in the same format as every other agent.

Per update: one episode for each of ``num_envs x num_agents_per_env`` single
agents through the frozen sequence, epsilon-greedy on Q (epsilon decays
linearly from ``epsilon_start`` to ``epsilon_end`` over the first
``epsilon_decay_fraction`` of all updates), appended to the circular replay
buffer; then ``gradient_steps`` Adam steps on minibatches of ``batch_size``
transitions drawn uniformly from the buffer.  The target network is copied
from the online one every ``target_update_every`` updates.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import lax

from mfax.games.base import Game
from mfax.networks import NetworkConfig, init_params
from mfax.rl.common import Frozen, Learner, RowNet, collect
from mfax.rl.config import RLConfig


class Buffer(NamedTuple):
    state: jax.Array  # int32 [M]
    obs: jax.Array  # [M, d]
    action: jax.Array  # int32 [M]
    reward: jax.Array  # [M]
    next_state: jax.Array  # int32 [M]
    next_obs: jax.Array  # [M, d]
    done: jax.Array  # float32 [M]


class OMDState(NamedTuple):
    params: Any  # Q-network (MeanFieldNet parameter tree, categorical head)
    target: Any
    opt_state: Any
    buffer: Buffer
    position: jax.Array  # int32 next write index
    size: jax.Array  # int32 filled entries
    updates: jax.Array  # int32 updates done


def policy_params(params: Any, tau: float) -> Any:
    """MeanFieldNet parameters of ``softmax(Q / tau)``: the head divided by ``tau``."""
    inner = dict(params["params"])
    inner["head"] = jax.tree_util.tree_map(lambda x: x / tau, inner["head"])
    return {**params, "params": inner}


def make_learner(
    config: RLConfig, game: Game, network: NetworkConfig, rownet: RowNet, gamma: float
) -> Learner:
    if network.head != "categorical" or network.recurrent:
        raise ValueError("m_omd needs a feed-forward network with a categorical head")
    E, N, T = config.resolved_num_envs(), config.num_agents_per_env, game.horizon
    A, d = game.num_actions, game.obs_dim
    per_update = T * E * N
    cap = config.buffer_size
    tau, alpha, l0 = config.tau, config.alpha, config.log_policy_clip
    total_updates = config.num_iterations * config.num_updates_per_iteration
    decay = max(int(total_updates * config.epsilon_decay_fraction), 1)
    schedule = optax.linear_schedule(
        config.lr, config.lr * config.lr_end_fraction, total_updates * config.gradient_steps
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule, eps=1e-5)
    )

    def q_values(params, states, obs):
        return rownet.logits(
            params, rownet.state_table(params)[states] + rownet.obs_table(params, obs)
        )

    def init(key):
        params = init_params(network, game, key)
        zi, zf = jnp.zeros((cap,), jnp.int32), jnp.zeros((cap,), jnp.float32)
        buffer = Buffer(
            zi, jnp.zeros((cap, d), jnp.float32), zi, zf, zi, jnp.zeros((cap, d), jnp.float32), zf
        )
        z = jnp.zeros((), jnp.int32)
        return OMDState(params, params, optimizer.init(params), buffer, z, z, z)

    def loss_fn(params, target, batch: Buffer):
        q = q_values(params, batch.state, batch.obs)
        q_a = jnp.take_along_axis(q, batch.action[:, None], -1)[:, 0]
        q_tgt_next = q_values(target, batch.next_state, batch.next_obs)
        logpi_next = jax.nn.log_softmax(q_tgt_next / tau, -1)
        soft_v = jnp.sum(jnp.exp(logpi_next) * (q_tgt_next - tau * logpi_next), -1)
        logpi = jax.nn.log_softmax(q_values(target, batch.state, batch.obs) / tau, -1)
        logpi_a = jnp.take_along_axis(logpi, batch.action[:, None], -1)[:, 0]
        y = (
            batch.reward
            + alpha * jnp.clip(tau * logpi_a, l0, 0.0)
            + gamma * (1.0 - batch.done) * soft_v
        )
        return jnp.mean(optax.huber_loss(q_a, lax.stop_gradient(y)))

    def update(frozen: Frozen, s: OMDState, key):
        k_collect, k_sample = jax.random.split(key)
        eps = config.epsilon_start + (config.epsilon_end - config.epsilon_start) * jnp.minimum(
            s.updates / decay, 1.0
        )
        table = rownet.state_table(s.params)
        obs_first = rownet.obs_table(s.params, frozen.obs)  # [T, E, H]

        def policy_fn(obs_first_t, states, k):
            q = rownet.logits(s.params, table[states] + obs_first_t[:, None, :])
            k_explore, k_random = jax.random.split(k)
            explore = jax.random.uniform(k_explore, states.shape) < eps
            random = jax.random.randint(k_random, states.shape, 0, A)
            return jnp.where(explore, random, jnp.argmax(q, -1)).astype(jnp.int32), ()

        steps = collect(game, frozen, k_collect, N, policy_fn, obs_first)
        env_obs = lambda o: jnp.broadcast_to(o[:, :, None, :], (T, E, N, d)).reshape(-1, d)  # noqa: E731
        done = jnp.broadcast_to((jnp.arange(T) == T - 1)[:, None, None], (T, E, N))
        new = Buffer(
            steps.state.reshape(-1),
            env_obs(frozen.obs),
            steps.action.reshape(-1),
            steps.reward.reshape(-1),
            steps.next_state.reshape(-1),
            env_obs(frozen.next_obs),
            done.reshape(-1).astype(jnp.float32),
        )
        where = (s.position + jnp.arange(per_update)) % cap
        buffer = jax.tree_util.tree_map(lambda b, n: b.at[where].set(n), s.buffer, new)
        size = jnp.minimum(s.size + per_update, cap)

        def grad_step(c, k):
            params, opt_state = c
            pick = jax.random.randint(k, (config.batch_size,), 0, size)
            batch = jax.tree_util.tree_map(lambda b: b[pick], buffer)
            loss, grads = jax.value_and_grad(loss_fn)(params, s.target, batch)
            upd, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, upd), opt_state), loss

        (params, opt_state), losses = lax.scan(
            grad_step, (s.params, s.opt_state), jax.random.split(k_sample, config.gradient_steps)
        )
        updates = s.updates + 1
        refresh = updates % config.target_update_every == 0
        target = jax.tree_util.tree_map(lambda p, t: jnp.where(refresh, p, t), params, s.target)
        return OMDState(
            params, target, opt_state, buffer, (s.position + per_update) % cap, size, updates
        ), losses.mean()

    def iteration(state: OMDState, frozen: Frozen, key):
        state, losses = lax.scan(
            lambda c, k: update(frozen, c, k),
            state,
            jax.random.split(key, config.num_updates_per_iteration),
        )
        return state, losses.mean()

    return Learner(init, iteration, lambda s: policy_params(s.params, tau))
