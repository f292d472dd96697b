"""Neural mean-field policies (flax linen), applied to all ``S`` grid states at once.

Architecture (docs/algorithms.md#network; the same function class, layer
sizes and initialisation as the published MFAX network, see docs/LEARNING.md):

- a state part: a learned embedding of the state index (``state_input=
  "index"``) or a linear layer on the normalised state features
  (``"values"``), both of size ``embed_dim``;
- an observation part: a linear embedding (size ``embed_dim``) of the shared
  observation or, recurrent, of ``dense(act(h_t))`` where ``h_t`` is the
  state of a GRU (``gru_hidden``) that reads the observation history and is
  reset at every episode start;
- their concatenation goes through the MLP (``hidden``, default 128, 128;
  dense + activation, default relu) and a head over the ``A`` actions:
  ``categorical`` (one logit per action, bias initialised at N(0, 0.01^2))
  or ``beta`` (two concentrations per state, turned into probabilities over
  the action grid by a softmax over the Beta log-densities at the action
  values, which lie in (0, 1), docs/games.md#macro).

The embeddings are linear on purpose: an activation there, a raw GRU state
fed to the MLP, or one more MLP layer (the earlier mfax layout) made RSPG
stall on the linear-quadratic game (docs/LEARNING.md). The published code's
``hidden_layer_sizes=(128, 128, 128)`` is ``embed_dim=64, hidden=(128,
128)`` here (its first size is the concatenation of two embeddings of 64).

Efficiency: the first MLP layer is linear in ``concat(state_part, obs_part)``,
so ``W_s state_part`` is computed once for all ``S`` states ([S, H], it does
not depend on the environment, so ``vmap`` over environments leaves it
unbatched) and ``W_o obs_part`` once per environment ([H]), then added by
broadcasting.  ``factored=False`` runs the naive concat for comparison; both
use the same parameters and agree numerically.

`NetworkConfig` (`mfax.network_config`) is a frozen, hashable description; `network_policy` turns it
and a game into a `MeanFieldPolicy` whose ``apply`` and ``initial_carry`` are
stable, hashable objects (so jitted evaluation compiles once per kind).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mfax.games.base import Game
from mfax.network_config import NetworkConfig
from mfax.policies import MeanFieldPolicy

#: the flax function of each activation name of `mfax.network_config.ACTIVATIONS`
ACTIVATION_FUNCTIONS = {"relu": nn.relu, "tanh": nn.tanh, "gelu": nn.gelu, "silu": nn.silu}


# The factored first layer adds an environment-free state term [S, H] to each
# environment's observation term; under `vmap` over environments that is a broadcast,
# whose gradient sums over the environments.  XLA:CPU runs that sum over a short
# leading axis (macro: [8, 1000, 128] -> [1000, 128], every step of the horizon) on a
# slow reduction path: a fifth of a macro iteration.  `_add_rows` broadcasts through
# `_spread` instead, whose gradient adds halves elementwise when there are few
# environments (macro SPG / RSPG 0.78-0.80x per iteration; docs/PERFORMANCE.md).
_HALVING_MAX = 16  # above it XLA's reduction is as fast (beach bar, 128 environments)


def _halving_sum(g: jax.Array) -> jax.Array:
    """``g.sum(0)`` as elementwise adds of halves (the leading axis halved each time)."""
    while g.shape[0] > 1:
        half = g.shape[0] // 2
        head = g[:half] + g[half : 2 * half]
        g = jnp.concatenate([head, g[2 * half :]]) if g.shape[0] % 2 else head
    return g[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _spread(x: jax.Array, n: int) -> jax.Array:
    """``x`` repeated ``n`` times along a new leading axis."""
    return jnp.broadcast_to(x, (n,) + x.shape)


def _spread_fwd(x, n):
    return _spread(x, n), None


def _spread_bwd(n, _, g):
    return (_halving_sum(g) if n <= _HALVING_MAX else g.sum(0),)


_spread.defvjp(_spread_fwd, _spread_bwd)


# Each environment's row is added to every state.  Its gradient is the sum over states,
# [E, S, H] -> [E, H], and the bias's the sum of that over environments; XLA folds the
# two sums into one over [E, S, H] and so reads the whole gradient a second time.  The
# barrier keeps the per-environment sums apart, so the bias sums those (linear-quadratic
# and beach-bar SPG about 0.95x per iteration; docs/PERFORMANCE.md).
@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _over_states(row: jax.Array, n: int) -> jax.Array:
    """``row[E, H]`` repeated over ``n`` states: ``[E, n, H]``."""
    return jnp.broadcast_to(row[:, None, :], (row.shape[0], n, row.shape[1]))


def _over_states_fwd(row, n):
    return _over_states(row, n), None


def _over_states_bwd(n, _, g):
    return (jax.lax.optimization_barrier(g.sum(1)),)


_over_states.defvjp(_over_states_fwd, _over_states_bwd)


@jax.custom_batching.custom_vmap
def _add_rows(table: jax.Array, row: jax.Array) -> jax.Array:
    """``table[S, H] + row[H]`` for every row of the table."""
    return table + row[None, :]


@_add_rows.def_vmap
def _add_rows_vmap(axis_size, in_batched, table, row):
    table_batched, row_batched = in_batched
    if not table_batched:
        table = _spread(table, axis_size)
    if not row_batched:
        row = jnp.broadcast_to(row, (axis_size,) + row.shape)
    return table + _over_states(row, table.shape[1]), True


# The head maps [rows, H] to a few outputs (the actions, or the Beta head's two
# concentrations). XLA computes its input gradient ``g @ kernel.T`` as a matrix product
# with an inner size of A, a pass over [rows, H] at a few GFLOP/s, followed by a second
# pass for the activation's gradient. `_narrow_product` states the tangent in ``x`` as one
# multiply-sum per output instead, so the gradient is A multiply-adds that XLA fuses
# with what follows (SPG / RSPG about 0.97x per iteration; docs/PERFORMANCE.md).
# Its tangent in the kernel is a product with ``kernel_dot.T`` behind a barrier, so the
# weight gradient is ``g.T @ x`` of shape [A, K], then a transposition: XLA would fold
# that transposition into the product and compute [K, A] with its own kernel, about 3x
# slower than the [A, K] product (in macro SPG's profile 0.107 -> 0.02-0.04 s an iteration).
_NARROW_MAX = 8  # outputs up to which the head is narrow


@jax.custom_jvp
def _narrow_product(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return x @ kernel


@_narrow_product.defjvp
def _narrow_product_jvp(primals, tangents):
    x, kernel = primals
    x_dot, kernel_dot = tangents
    through_x = jnp.stack([jnp.sum(x_dot * kernel[:, j], -1) for j in range(kernel.shape[1])], -1)
    through_kernel = jnp.einsum("...k,ak->...a", x, jax.lax.optimization_barrier(kernel_dot.T))
    return x @ kernel, through_x + through_kernel


def _narrow_dot(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
    """`jax.lax.dot_general` for `nn.Dense`'s ``x[..., K] @ kernel[K, A]``, via `_narrow_product`."""
    (lhs_contract, rhs_contract), batch = dimension_numbers
    assert lhs_contract == (lhs.ndim - 1,) and rhs_contract == (0,) and batch == ((), ())
    return _narrow_product(lhs, rhs)


# A hidden layer's bias gradient sums its output's gradient over every row: under the
# environments' vmap one reduction over [E, S, H], which XLA:CPU runs with windows across
# the environments, several times slower than the sum over each environment's own
# [S, H].  `_add_bias` sums each call's rows behind a barrier, so the environments'
# [E, H] sums come after (SPG 0.96-0.97x per iteration on the three games;
# docs/PERFORMANCE.md).
@jax.custom_vjp
def _add_bias(y: jax.Array, bias: jax.Array) -> jax.Array:
    return y + bias


def _add_bias_fwd(y, bias):
    return y + bias, None


def _add_bias_bwd(_, g):
    return g, jax.lax.optimization_barrier(g.sum(tuple(range(g.ndim - 1))))


_add_bias.defvjp(_add_bias_fwd, _add_bias_bwd)


# A hidden layer's weight gradient ``x.T @ g`` contracts over every row of the
# rollout step (the environments' vmap folds [E, S] into one contraction). XLA:CPU runs
# that product 1.2-1.35x more slowly than the same FLOPs as a batch of a few contiguous
# row blocks summed after. `_row_product` is ``x @ kernel`` over the flattened rows
# (`custom_vmap`), with that blocked weight gradient (`custom_vjp`); like `_add_rows`,
# its reverse mode needs a vmap around it (macro SPG / RSPG about 0.93x per iteration;
# docs/PERFORMANCE.md).
_WEIGHT_GRAD_BLOCKS = 4


@jax.custom_vjp
def _flat_product(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return x @ kernel


def _flat_product_fwd(x, kernel):
    return x @ kernel, (x, kernel)


def _flat_product_bwd(res, g):
    x, kernel = res
    blocks = _WEIGHT_GRAD_BLOCKS
    if blocks > 1 and x.shape[0] % blocks == 0:
        per_block = jnp.einsum(
            "brk,brh->bkh", x.reshape(blocks, -1, x.shape[1]), g.reshape(blocks, -1, g.shape[1])
        )
        d_kernel = per_block.sum(0)
    else:
        d_kernel = x.T @ g
    return g @ kernel.T, d_kernel


_flat_product.defvjp(_flat_product_fwd, _flat_product_bwd)


def _on_flat_rows(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """``x[..., K] @ kernel`` as one `_flat_product` over all of ``x``'s rows."""
    rows = _flat_product(x.reshape(-1, x.shape[-1]), kernel)
    return rows.reshape(x.shape[:-1] + (kernel.shape[-1],))


@jax.custom_batching.custom_vmap
def _row_product(x: jax.Array, kernel: jax.Array) -> jax.Array:
    return _on_flat_rows(x, kernel)


@_row_product.def_vmap
def _row_product_vmap(axis_size, in_batched, x, kernel):
    x_batched, kernel_batched = in_batched
    if kernel_batched:  # per-seed kernels: a plain batched product
        in_axes = (0 if x_batched else None, 0)
        return jax.vmap(jnp.matmul, in_axes)(x, kernel), True
    return _on_flat_rows(x, kernel), True


class HiddenDense(nn.Module):
    """`nn.Dense` with its bias added by `_add_bias`: the same parameters (names,
    shapes, initial values) and outputs. ``vmapped``: the call runs under the
    environments' vmap (the grid's forward pass), so the weight gradient may use
    `_row_product`."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, vmapped: bool = False) -> jax.Array:
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        product = _row_product(x, kernel) if vmapped and _WEIGHT_GRAD_BLOCKS else x @ kernel
        return _add_bias(product, bias)


class FirstLayer(nn.Module):
    """Dense layer on ``concat(state_part[S, Ds], obs_part[Do])``, factored or naive.

    ``state_term`` / ``obs_term`` are the two halves of the factored form (for any
    leading shapes); they read the parameters that ``__call__`` creates.
    """

    features: int
    factored: bool = True

    def state_term(self, state_part: jax.Array) -> jax.Array:
        """``state_part[..., Ds] @ kernel[:Ds]``."""
        kernel = self.get_variable("params", "kernel")
        return state_part @ kernel[: state_part.shape[-1]]

    def obs_term(self, obs_part: jax.Array) -> jax.Array:
        """``obs_part[..., Do] @ kernel[Ds:] + bias``."""
        kernel = self.get_variable("params", "kernel")
        bias = self.get_variable("params", "bias")
        return obs_part @ kernel[kernel.shape[0] - obs_part.shape[-1] :] + bias

    @nn.compact
    def __call__(self, state_part: jax.Array, obs_part: jax.Array) -> jax.Array:
        ds, do = state_part.shape[-1], obs_part.shape[-1]
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (ds + do, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if self.factored:
            return _add_rows(self.state_term(state_part), self.obs_term(obs_part))
        tiled = jnp.broadcast_to(obs_part[None, :], (state_part.shape[0], do))
        return jnp.concatenate([state_part, tiled], axis=-1) @ kernel + bias


def _gru_step(module: MeanFieldNet, carry, obs):
    return module.gru(carry, obs)


def _small_normal(key, shape, dtype=jnp.float32):
    return 0.01 * jax.random.normal(key, shape, dtype)


class MeanFieldNet(nn.Module):
    """``(carry, obs[d], state_features[S, f]) -> (probs[S, A], carry)`` for one environment.

    Besides ``__call__`` (all ``S`` grid states, one environment), the pieces are
    methods for ``module.apply(params, ..., method=...)`` on individual rows (the RL
    learners, `mfax.rl.common.RowNet`): ``state_table`` (first-layer state term of
    every grid state, ``[S, H]``), ``obs_table`` (first-layer observation term plus
    bias, ``[..., H]``; recurrent: a GRU scan over a time-major ``[T, ..., d]``
    sequence from the zero carry) and ``logits`` (first-layer pre-activations
    ``[..., H]`` -> action logits ``[..., A]``).
    """

    config: NetworkConfig
    num_states: int
    num_actions: int
    action_values: tuple[float, ...] = ()

    def setup(self):
        cfg = self.config
        if cfg.state_input == "index":
            self.state_embed = nn.Embed(self.num_states, cfg.embed_dim)
        else:
            self.state_dense = nn.Dense(cfg.embed_dim)
        if cfg.recurrent:
            self.gru = nn.GRUCell(cfg.gru_hidden)
            self.gru_out = nn.Dense(cfg.gru_hidden)
        self.obs_embed = nn.Dense(cfg.embed_dim)
        self.first = FirstLayer(cfg.hidden[0], cfg.factored)
        for i, h in enumerate(cfg.hidden[1:]):
            setattr(self, f"hidden_{i + 1}", HiddenDense(h))
        outputs = self.num_actions if cfg.head == "categorical" else 2
        dot = _narrow_dot if outputs <= _NARROW_MAX else None
        if cfg.head == "categorical":
            self.head = nn.Dense(outputs, bias_init=_small_normal, dot_general=dot)
        else:
            self.head = nn.Dense(outputs, dot_general=dot)

    @property
    def _act(self):
        return ACTIVATION_FUNCTIONS[self.config.activation]

    def state_part(self, features: jax.Array) -> jax.Array:
        """``[S, embed_dim]``: the state embeddings, or a linear layer on ``features[S, f]``."""
        if self.config.state_input == "index":
            return self.state_embed(jnp.arange(self.num_states))
        return self.state_dense(features)

    def _obs_embedding(self, x: jax.Array) -> jax.Array:
        """The observation part from the observation (feed-forward) or the GRU state."""
        if self.config.recurrent:
            x = self.gru_out(self._act(x))
        return self.obs_embed(x)

    def obs_part(self, carry, obs: jax.Array):
        """``(carry, obs[..., d]) -> (carry, obs_part[..., embed_dim])`` (one GRU step if
        recurrent)."""
        if self.config.recurrent:
            carry, obs = self.gru(carry, obs)
        return carry, self._obs_embedding(obs)

    def state_table(self, features: jax.Array) -> jax.Array:
        """``W_s state_part`` for every grid state: ``[S, H]``."""
        return self.first.state_term(self.state_part(features))

    def obs_table(self, obs: jax.Array) -> jax.Array:
        """``W_o obs_part + b``: ``obs[..., d]`` (feed-forward) or, recurrent, a GRU scan
        over the time-major ``obs[T, ..., d]`` started from the zero carry."""
        if self.config.recurrent:
            scan = nn.scan(_gru_step, variable_broadcast="params", split_rngs={"params": False})
            h0 = jnp.zeros(obs.shape[1:-1] + (self.config.gru_hidden,), jnp.float32)
            _, obs = scan(self, h0, obs)
        return self.first.obs_term(self._obs_embedding(obs))

    def logits(self, first: jax.Array, vmapped: bool = False) -> jax.Array:
        """First-layer pre-activations ``[..., H]`` -> action logits ``[..., A]``
        (``vmapped``: see `HiddenDense`)."""
        act = self._act
        x = act(first)
        for i in range(1, len(self.config.hidden)):
            x = act(getattr(self, f"hidden_{i}")(x, vmapped))
        out = self.head(x)
        if self.config.head == "categorical":
            return out
        conc = 1.0 + nn.softplus(out)  # [..., 2], both > 1
        grid = jnp.clip(jnp.asarray(self.action_values, jnp.float32), 1e-6, 1.0 - 1e-6)
        # log Beta density up to the normalising constant, which the softmax cancels
        return (conc[..., :1] - 1.0) * jnp.log(grid) + (conc[..., 1:] - 1.0) * jnp.log1p(-grid)

    def __call__(self, carry, obs: jax.Array, features: jax.Array):
        carry, obs_part = self.obs_part(carry, obs)
        # the grid's pass, which the rollouts vmap over environments (as `_add_rows` needs)
        logits = self.logits(self.first(self.state_part(features), obs_part), vmapped=True)
        return jax.nn.softmax(logits, axis=-1), carry


def _check_beta_grid(game: Game) -> tuple[float, ...]:
    values = np.asarray(game.action_values(), np.float64)
    if values.min() <= 0.0 or values.max() >= 1.0:
        raise ValueError(
            f"network: 'head' = 'beta' needs action values in (0, 1), but game {game.name!r} has "
            f"actions in [{values.min():g}, {values.max():g}]; use head 'categorical'"
        )
    return tuple(float(v) for v in values)


@functools.lru_cache(maxsize=64)
def build_module(config: NetworkConfig, game: Game) -> MeanFieldNet:
    values = _check_beta_grid(game) if config.head == "beta" else ()
    return MeanFieldNet(config, game.num_states, game.num_actions, values)


@functools.lru_cache(maxsize=64)
def _features(game: Game) -> np.ndarray:
    return np.asarray(game.state_features(), np.float32)


@dataclasses.dataclass(frozen=True)
class ZeroCarry:
    """``initial_carry`` of a recurrent policy: a zero GRU state (hashable, stable)."""

    size: int

    def __call__(self) -> jax.Array:
        return jnp.zeros((self.size,), jnp.float32)


def _empty_carry() -> tuple:
    return ()


@dataclasses.dataclass(frozen=True)
class NetworkApply:
    """The static ``apply(params, carry, obs, t)`` of a network policy for one game."""

    config: NetworkConfig
    game: Game

    def __call__(self, params, carry, obs, t):
        module = build_module(self.config, self.game)
        if self.config.recurrent:
            # the rollout resets the carry at every episode start; do it here too, so a
            # policy stepped by hand can never carry a history across episodes
            carry = jnp.where(jnp.asarray(t) == 0, jnp.zeros_like(carry), carry)
        probs, carry = module.apply(params, carry, obs, jnp.asarray(_features(self.game)))
        return probs, carry


def initial_carry_fn(config: NetworkConfig):
    return ZeroCarry(config.gru_hidden) if config.recurrent else _empty_carry


def init_params(config: NetworkConfig, game: Game, key: jax.Array):
    """Initial parameters (a pytree of arrays) for ``config`` on ``game``."""
    module = build_module(config, game)
    carry = initial_carry_fn(config)()
    return module.init(
        key, carry, jnp.zeros((game.obs_dim,), jnp.float32), jnp.asarray(_features(game))
    )


def network_policy(config: NetworkConfig, game: Game, params: Any = None) -> MeanFieldPolicy:
    """A `MeanFieldPolicy` for ``config`` on ``game`` (``params`` may be given later)."""
    return MeanFieldPolicy(NetworkApply(config, game), params, initial_carry_fn(config))


def num_parameters(params: Any) -> int:
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))
