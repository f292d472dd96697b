"""IPPO and recurrent RIPPO against a frozen mean-field sequence (PureJaxRL style).

One *update* (``num_updates_per_iteration`` of them per outer iteration):

1. collect one episode for each of ``num_envs x num_agents_per_env`` single
   agents through the frozen sequence (`mfax.rl.common.collect`), sampling
   actions from the actor;
2. GAE (``gae_lambda``) with the critic's values, ``V_T = 0`` (the episode
   ends at ``t = T - 1``; the last reward is the terminal one);
3. ``update_epochs`` passes over the ``E x N`` trajectories, shuffled and
   split into ``num_minibatches`` minibatches of whole trajectories: clipped
   surrogate (``clip_eps``), value loss (``vf_coef``), entropy bonus
   (``ent_coef``), advantages normalised per minibatch; Adam with global
   norm clipping, learning rate annealed linearly over all gradient steps.

Actor: the mean-field network of `mfax.networks` applied to rows (state,
observation).  IPPO (``recurrent=False``) sees the state and the current
shared observation; RIPPO the state and a GRU's summary of the shared
observation history.  The GRU reads only shared observations, so its hidden
state is the same for every agent of an environment: it is computed once per
(t, environment) by a scan that starts from zeros at ``t = 0`` (the episode
start) -- exactly what the mean-field policy does -- and the actor's
individual input is the current state only, so the actor *is* a mean-field
policy.  Critic: a separate MLP on (normalised state features, shared
observation, t / T); it is used only in training, so it may see the time
(an asymmetric critic); the actor never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax import lax

from mfax.games.base import Game
from mfax.network_config import NetworkConfig
from mfax.networks import ACTIVATION_FUNCTIONS, init_params
from mfax.rl.common import Frozen, Learner, RowNet, collect
from mfax.rl.config import RLConfig


class Critic(nn.Module):
    hidden: Sequence[int]
    activation: str = "relu"

    @nn.compact
    def __call__(self, x):
        act = ACTIVATION_FUNCTIONS[self.activation]
        for h in self.hidden:
            x = act(nn.Dense(h)(x))
        return nn.Dense(1)(x)[..., 0]


class PPOState(NamedTuple):
    params: Any  # {"actor": MeanFieldNet params, "critic": Critic params}
    opt_state: Any
    updates: jax.Array  # int32 updates done


def make_learner(
    config: RLConfig, game: Game, network: NetworkConfig, rownet: RowNet, gamma: float
) -> Learner:
    E, N = config.resolved_num_envs(), config.num_agents_per_env
    T = game.horizon
    M = config.num_minibatches
    traj_per_mb = E * N // M
    critic = Critic(config.critic_hidden, config.activation)
    features = jnp.asarray(game.state_features(), jnp.float32)  # [S, f]
    time_feature = (jnp.arange(T, dtype=jnp.float32) / T)[:, None]  # [T, 1]
    total_steps = (
        config.num_iterations * config.num_updates_per_iteration * config.update_epochs * M
    )
    schedule = optax.linear_schedule(config.lr, config.lr * config.lr_end_fraction, total_steps)
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm), optax.adam(schedule, eps=1e-5)
    )

    def critic_input(states, obs_rows, t_rows):
        return jnp.concatenate([features[states], obs_rows, t_rows], -1)

    def init(key):
        k_actor, k_critic = jax.random.split(key)
        actor = init_params(network, game, k_actor)
        x = jnp.zeros((1, features.shape[1] + game.obs_dim + 1), jnp.float32)
        params = {"actor": actor, "critic": critic.init(k_critic, x)}
        return PPOState(params, optimizer.init(params), jnp.zeros((), jnp.int32))

    def values_of(critic_params, states, obs, env_idx):
        """``states[T, B]`` of trajectories in environments ``env_idx[B]`` -> ``V[T, B]``."""
        obs_rows = obs[:, env_idx]  # [T, B, d]
        t_rows = jnp.broadcast_to(time_feature[:, None, :], states.shape + (1,))
        return critic.apply(critic_params, critic_input(states, obs_rows, t_rows))

    def loss_fn(params, frozen: Frozen, batch):
        states, actions, old_logp, adv, targets, env_idx = batch  # [T, B] (env_idx [B])
        actor = params["actor"]
        first = rownet.state_table(actor)[states] + rownet.obs_table(actor, frozen.obs)[:, env_idx]
        logp_all = jax.nn.log_softmax(rownet.logits(actor, first), -1)
        logp = jnp.take_along_axis(logp_all, actions[..., None], -1)[..., 0]
        ratio = jnp.exp(logp - old_logp)
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        surrogate = jnp.minimum(
            ratio * adv, jnp.clip(ratio, 1 - config.clip_eps, 1 + config.clip_eps) * adv
        )
        entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, -1).mean()
        value = values_of(params["critic"], states, frozen.obs, env_idx)
        value_loss = 0.5 * jnp.mean((value - targets) ** 2)
        return -surrogate.mean() + config.vf_coef * value_loss - config.ent_coef * entropy

    def update(frozen: Frozen, carry: PPOState, key):
        k_collect, k_perm = jax.random.split(key)
        actor = carry.params["actor"]
        table = rownet.state_table(actor)  # [S, H]
        obs_first = rownet.obs_table(actor, frozen.obs)  # [T, E, H]

        def policy_fn(obs_first_t, states, k):
            logits = rownet.logits(actor, table[states] + obs_first_t[:, None, :])  # [E, N, A]
            a = jax.random.categorical(k, logits, -1).astype(jnp.int32)
            logp = jnp.take_along_axis(jax.nn.log_softmax(logits, -1), a[..., None], -1)[..., 0]
            return a, logp

        steps = collect(game, frozen, k_collect, N, policy_fn, obs_first)
        # trajectories: [T, E * N], environment of each trajectory
        flat = lambda x: x.reshape(T, E * N)  # noqa: E731
        states, actions, rewards, logp = map(
            flat, (steps.state, steps.action, steps.reward, steps.aux)
        )
        env_idx = jnp.repeat(jnp.arange(E, dtype=jnp.int32), N)
        values = values_of(carry.params["critic"], states, frozen.obs, env_idx)  # [T, B]

        def gae_step(carry_gae, xs):
            adv_next, v_next = carry_gae
            r, v = xs
            delta = r + gamma * v_next - v
            adv = delta + gamma * config.gae_lambda * adv_next
            return (adv, v), adv

        zeros = jnp.zeros_like(values[0])
        _, adv = lax.scan(gae_step, (zeros, zeros), (rewards, values), reverse=True)
        targets = adv + values

        def epoch(c, k):
            perm = jax.random.permutation(k, E * N).reshape(M, traj_per_mb)
            batches = (
                states.T[perm].transpose(0, 2, 1),
                actions.T[perm].transpose(0, 2, 1),
                logp.T[perm].transpose(0, 2, 1),
                adv.T[perm].transpose(0, 2, 1),
                targets.T[perm].transpose(0, 2, 1),
                env_idx[perm],
            )

            def minibatch(c, batch):
                loss, grads = jax.value_and_grad(loss_fn)(c.params, frozen, batch)
                upd, opt_state = optimizer.update(grads, c.opt_state, c.params)
                return PPOState(optax.apply_updates(c.params, upd), opt_state, c.updates), loss

            return lax.scan(minibatch, c, batches)

        carry, losses = lax.scan(epoch, carry, jax.random.split(k_perm, config.update_epochs))
        return carry._replace(updates=carry.updates + 1), losses.mean()

    def iteration(state: PPOState, frozen: Frozen, key):
        state, losses = lax.scan(
            lambda c, k: update(frozen, c, k),
            state,
            jax.random.split(key, config.num_updates_per_iteration),
        )
        return state, losses.mean()

    return Learner(init, iteration, lambda s: s.params["actor"])
