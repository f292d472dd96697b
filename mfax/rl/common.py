"""Shared machinery of the model-free learners.

Outer loop (docs/algorithms.md#ippo-rippo-and-m-omd): every iteration rolls out the
*sample-based* game (``num_envs`` environments of ``num_agents`` agents,
`mfax.dynamics.rollout_fn(..., num_agents=N)`) with the current mean-field
policy, freezes the resulting sequence of aggregate states, empirical mean
fields, shared observations and reward tables, and trains a representative
agent against it for ``num_updates_per_iteration`` updates.  Every update
steps a batch of ``num_envs x num_agents_per_env`` single agents through
the frozen sequence: an agent of environment ``e`` starts from a state drawn
from that environment's ``mu_0``, sees its own state and the shared
observation ``obs[t, e]`` (never ``t``), is paid ``reward[t, e, s, a]``, and
draws its successor from the kernel row ``game.kernel(agg_t, mu_t)[s, a]``
(sampling only: a simulator).  All single agents start at ``t = 0`` and an
episode ends at ``t = T - 1``, so one batch is exactly one episode per agent.

The learners' networks *are* mean-field policies: the actor (IPPO, RIPPO)
and the Q-network (M-OMD) have the parameter tree of `mfax.networks`'
``MeanFieldNet``.  `RowNet` evaluates that network on individual
(state, observation) rows -- what a single agent needs -- with the same
parameters and the same factored first layer, so converting the learner to
a mean-field policy is just `mfax.networks.network_policy(network, game,
params)`, which evaluates it on every grid state (and, for RIPPO, the
observation history) and which `mfax.agents.save_agent` stores.

`build_trainer` assembles PureJaxRL-style pure functions (``init``,
``iteration``, ``chunk`` = ``eval_every`` outer iterations in a ``lax.scan``,
``evaluate`` = exact exploitability on the push-forward game via
`mfax.evaluation.evaluate_fn`), and `mfax.rl.train.run_training` (which
knows the learners) drives them from Python
with the shared driver (`mfax.training.driver.drive`: timings, progress bar,
divergence checks, Ctrl-C, resumption) and returns the same
`mfax.training.TrainResult` as SPG / RSPG, so `mfax.training.save_result`
writes RL agents (and their training state) in the shared on-disk format and
`mfax.training.resume_training` continues them.

Divergence: an outer iteration whose loss or learner state is not finite, or
whose new mean-field policy gives non-finite probabilities on the
observations of the rollout's first environment, is not applied.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfax.dynamics import rollout_fn, sample_initial, sample_next
from mfax.evaluation import evaluate_fn
from mfax.games.base import Game
from mfax.networks import MeanFieldNet, NetworkConfig, network_policy
from mfax.rl.config import RLConfig
from mfax.training.driver import ChunkedTrainer, all_finite, keep_if, policy_probs_finite
from mfax.training.run import Metrics, metrics_of


# --------------------------------------------------------------------------------------------
# the mean-field network evaluated on individual rows
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RowNet:
    """`mfax.networks.MeanFieldNet` evaluated on rows ``(state index, observation part)``.

    The computation is split so that shared parts are computed once:
    ``state_table`` gives ``W_s state_part`` for every grid state ``[S, H]``,
    ``obs_table`` gives ``W_o obs_part + b`` for any leading shape (for the
    recurrent network: a GRU scan over a time-major ``[T, E, d]`` sequence,
    started from the zero carry at ``t = 0`` as the mean-field policy is),
    and ``logits(params, state_table[s] + obs_table[...])`` the rest.  Each is the
    `MeanFieldNet` method of the same name, so the layers are defined once.
    """

    config: NetworkConfig
    num_states: int
    num_actions: int
    features: Any  # np.ndarray [S, f] (hashable through id via dataclass eq=False below)
    action_values: tuple[float, ...]

    def __hash__(self):
        return hash((self.config, self.num_states, self.num_actions, self.action_values))

    def __eq__(self, other):
        return isinstance(other, RowNet) and hash(self) == hash(other)

    @property
    def module(self) -> MeanFieldNet:
        return MeanFieldNet(self.config, self.num_states, self.num_actions, self.action_values)

    def state_table(self, params) -> jax.Array:
        """``W_s state_part`` for every grid state: ``[S, H]``."""
        return self.module.apply(
            params, jnp.asarray(self.features), method=MeanFieldNet.state_table
        )

    def obs_table(self, params, obs: jax.Array) -> jax.Array:
        """``W_o obs_part + b``: ``obs[..., d]`` (feed-forward) or ``obs[T, E, d]`` (GRU)."""
        return self.module.apply(params, obs, method=MeanFieldNet.obs_table)

    def logits(self, params, first: jax.Array) -> jax.Array:
        """First-layer pre-activations ``[..., H]`` -> action logits ``[..., A]``."""
        return self.module.apply(params, first, method=MeanFieldNet.logits)


def make_rownet(network: NetworkConfig, game: Game) -> RowNet:
    values = tuple(float(v) for v in np.asarray(game.action_values()))
    return RowNet(
        network,
        game.num_states,
        game.num_actions,
        np.asarray(game.state_features(), np.float32),
        values,
    )


def agent_probs(rownet: RowNet, params, states: jax.Array, obs: jax.Array) -> jax.Array:
    """Action probabilities of single agents: ``states[B]``, ``obs[B, d]`` (or, recurrent,
    ``states[T, E]`` with the observation sequence ``obs[T, E, d]``) -> ``[..., A]``."""
    table = rownet.state_table(params)
    return jax.nn.softmax(rownet.logits(params, table[states] + rownet.obs_table(params, obs)), -1)


# --------------------------------------------------------------------------------------------
# the frozen mean-field sequence and single agents stepping through it
# --------------------------------------------------------------------------------------------
class Frozen(NamedTuple):
    """A sample-based rollout, frozen: time-major, ``[T, E, ...]``."""

    obs: jax.Array  # [T, E, d]
    next_obs: jax.Array  # [T, E, d] obs at t + 1 (t = T - 1: a copy; the episode has ended)
    reward: jax.Array  # [T, E, S, A], already multiplied by the reward scale
    aggregate: Any  # leaves [T, E]
    mu: jax.Array  # [T, E, S] empirical mean fields


def freeze(traj, scale) -> Frozen:
    next_obs = jnp.concatenate([traj.obs[1:], traj.obs[-1:]], 0)
    return Frozen(traj.obs, next_obs, traj.reward * scale, traj.aggregate, traj.mu)


class Steps(NamedTuple):
    """What a batch of single agents did: every leaf ``[T, E, N]``."""

    state: jax.Array
    action: jax.Array
    reward: jax.Array
    next_state: jax.Array
    aux: Any


def collect(
    game: Game, frozen: Frozen, key: jax.Array, num_agents: int, policy_fn: Callable, policy_xs: Any
) -> Steps:
    """Step ``E x num_agents`` single agents through the frozen sequence for one episode.

    ``policy_fn(x_t, states[E, N], key) -> (actions[E, N], aux)`` where ``x_t`` is the
    time-``t`` slice of the time-major pytree ``policy_xs``.
    """
    T, E, S = frozen.mu.shape
    k_init, k_steps = jax.random.split(key)
    states = sample_initial(k_init, frozen.mu[0], num_agents)
    env = jnp.arange(E, dtype=jnp.int32)[:, None]

    def step(states, xs):
        x_t, reward_t, agg_t, mu_t, key_t = xs
        k_act, k_next = jax.random.split(key_t)
        actions, aux = policy_fn(x_t, states, k_act)
        idx, prob = jax.vmap(game.kernel)(agg_t, mu_t)  # [E, S, A, K]
        nxt = sample_next(k_next, states, actions, idx, prob)
        rec = Steps(states, actions, reward_t[env, states, actions], nxt, aux)
        return nxt, rec

    xs = (policy_xs, frozen.reward, frozen.aggregate, frozen.mu, jax.random.split(k_steps, T))
    _, steps = lax.scan(step, states, xs)
    return steps


# --------------------------------------------------------------------------------------------
# the outer loop
# --------------------------------------------------------------------------------------------
class Learner(NamedTuple):
    """What an algorithm module provides to `build_trainer`."""

    init: Callable[[jax.Array], Any]  # key -> learner state
    iteration: Callable[[Any, Frozen, jax.Array], tuple[Any, jax.Array]]  # -> (state, loss)
    mf_params: Callable[[Any], Any]  # learner state -> MeanFieldNet params


class RLState(NamedTuple):
    learner: Any
    key: jax.Array
    eval_key: jax.Array
    reward_scale: jax.Array
    step: jax.Array  # outer iterations run
    failed_at: jax.Array  # first non-finite iteration, -1 while all is well


@dataclasses.dataclass(frozen=True, eq=False)
class RLTrainer(ChunkedTrainer):
    """The pure pieces of an RL run (same attributes as `mfax.training.Trainer`)."""

    config: RLConfig
    game: Game
    network: NetworkConfig
    num_envs: int
    eval_num_envs: int
    gamma: float
    init: Callable[[jax.Array], RLState]
    chunk: Callable[[RLState], tuple[RLState, jax.Array]]
    evaluate: Callable[[RLState], Metrics]
    mf_params: Callable[[RLState], Any]
    rownet: RowNet
    iteration: Callable[[RLState, Any], tuple[RLState, jax.Array]]  # one outer iteration


def build_trainer(config: RLConfig, game: Game, make_learner: Callable) -> RLTrainer:
    """``make_learner(config, game, network, rownet, gamma) -> Learner``."""
    network = config.network(game)
    rownet = make_rownet(network, game)
    num_envs, eval_envs = config.resolved_num_envs(), config.resolved_eval_num_envs()
    gamma = config.resolved_gamma(game)
    learner = make_learner(config, game, network, rownet, gamma)
    policy = network_policy(network, game)
    rollout = rollout_fn(game, policy, num_envs, num_agents=config.num_agents)
    evaluate_exact = evaluate_fn(game, policy, eval_envs, gamma)

    def init(key: jax.Array) -> RLState:
        k_learner, k_train, k_eval = jax.random.split(key, 3)
        ls = learner.init(k_learner)
        # 0 = "not set yet": the first iteration sets 1 / mean |R| of its (initial-policy) rollout
        scale = jnp.asarray(config.reward_scale or 0.0, jnp.float32)
        return RLState(
            ls, k_train, k_eval, scale, jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32)
        )

    def iteration(state: RLState, _):
        key, k_roll, k_learn = jax.random.split(state.key, 3)
        traj = rollout(learner.mf_params(state.learner), k_roll)
        scale = jnp.where(
            state.reward_scale > 0,
            state.reward_scale,
            1.0 / jnp.maximum(jnp.mean(jnp.abs(traj.reward)), 1e-6),
        )
        ls, loss = learner.iteration(state.learner, freeze(traj, scale), k_learn)
        ok = (state.failed_at < 0) & jnp.isfinite(loss) & all_finite(ls)
        ok = ok & policy_probs_finite(policy, learner.mf_params(ls), traj.obs[:, 0])
        ls = keep_if(ok, ls, state.learner)
        failed_at = jnp.where((state.failed_at < 0) & ~ok, state.step, state.failed_at)
        return RLState(ls, key, state.eval_key, scale, state.step + 1, failed_at), loss

    def chunk(state: RLState):
        return lax.scan(iteration, state, None, length=config.eval_every)

    def evaluate(state: RLState) -> Metrics:
        return metrics_of(evaluate_exact(learner.mf_params(state.learner), state.eval_key), state)

    return RLTrainer(
        config,
        game,
        network,
        num_envs,
        eval_envs,
        gamma,
        init,
        chunk,
        evaluate,
        lambda s: learner.mf_params(s.learner),
        rownet,
        iteration,
    )
