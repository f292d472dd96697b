"""Neural mean-field policies: factored first layer, heads, recurrent carry reset."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mfax
from mfax.dynamics import rollout_fn
from mfax.networks import (
    FirstLayer,
    HiddenDense,
    NetworkApply,
    NetworkConfig,
    _halving_sum,
    _narrow_product,
    _row_product,
    build_module,
    init_params,
    initial_carry_fn,
    network_policy,
)


@pytest.fixture(scope="module")
def lq():
    return mfax.make_game("linear_quadratic", num_states=21, horizon=8)


@pytest.fixture(scope="module")
def macro():
    return mfax.make_game("macro", num_wealth=8, num_income=3, num_actions=5, horizon=6)


def test_first_layer_factored_equals_naive():
    state = jax.random.normal(jax.random.key(0), (50, 12))
    obs = jax.random.normal(jax.random.key(1), (3,))
    params = FirstLayer(32, True).init(jax.random.key(2), state, obs)
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # non-zero bias too
    fact = FirstLayer(32, True).apply(params, state, obs)
    naive = FirstLayer(32, False).apply(params, state, obs)
    ref = np.concatenate([np.asarray(state), np.tile(np.asarray(obs), (50, 1))], 1) @ np.asarray(
        params["params"]["kernel"]
    ) + np.asarray(params["params"]["bias"])
    np.testing.assert_allclose(fact, naive, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fact, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 8, 9])
def test_halving_sum_is_the_sum(n):
    g = jnp.arange(n * 6, dtype=jnp.float32).reshape(n, 2, 3) ** 2  # integers: exact
    np.testing.assert_array_equal(_halving_sum(g), g.sum(0))


@pytest.mark.parametrize("envs", [1, 3, 8, 20])  # 20: above _HALVING_MAX, XLA's own sum
def test_first_layer_gradient_over_environments(envs):
    """The vmapped factored layer (its gradient summed by `_spread`) against the same
    layer with the broadcast written out, values and gradients, also under a second vmap
    (seeds)."""
    state = jax.random.normal(jax.random.key(0), (50, 12))
    obs = jax.random.normal(jax.random.key(1), (2, envs, 3))  # [seeds, envs, d]
    layer = FirstLayer(32, True)
    params = layer.init(jax.random.key(2), state, obs[0, 0])
    weights = jax.random.normal(jax.random.key(3), (envs, 50, 32))

    def loss(p, o, plain):
        if plain:
            k = p["params"]["kernel"]
            out = (state @ k[:12])[None] + (o @ k[12:] + p["params"]["bias"])[:, None, :]
        else:
            out = jax.vmap(lambda x: layer.apply(p, state, x))(o)
        return jnp.sum(jnp.tanh(out) * weights)

    grads = jax.jit(jax.vmap(jax.value_and_grad(loss), (None, 0, None)), static_argnums=2)
    got, ref = grads(params, obs, False), grads(params, obs, True)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("envs", [1, 3, 20])
@pytest.mark.parametrize("vmapped", [False, True])
def test_hidden_dense_is_flax_dense(envs, vmapped):
    """`HiddenDense` against `nn.Dense`: the same parameters at initialisation, the same
    outputs, and the same gradients under a vmap over environments (called as on the
    grid's pass or not) and one over seeds."""
    x = jax.random.normal(jax.random.key(0), (2, envs, 30, 16))  # [seeds, envs, rows, K]
    weights = jax.random.normal(jax.random.key(1), (envs, 30, 8))
    ours = HiddenDense(8).init(jax.random.key(2), x[0, 0])
    ref = nn.Dense(8).init(jax.random.key(2), x[0, 0])
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(ref)
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_array_equal(a, b)
    params = jax.tree_util.tree_map(lambda p: p + 0.1, ref)  # a non-zero bias

    def loss(p, xs, apply):
        return jnp.sum(jnp.tanh(jax.vmap(lambda xe: apply(p, xe))(xs)) * weights)

    def grads(apply):
        return jax.jit(jax.vmap(jax.value_and_grad(lambda p, xs: loss(p, xs, apply)), (None, 0)))

    got = grads(lambda p, xe: HiddenDense(8).apply(p, xe, vmapped))(params, x)
    want = grads(nn.Dense(8).apply)(params, x)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("envs", [1, 3, 4, 20])  # 30 * envs rows: blocked when envs is even
@pytest.mark.parametrize("per_seed_kernel", [False, True])
def test_row_product_gradient_is_the_products(envs, per_seed_kernel):
    """`_row_product` (the hidden layers' product, its weight gradient summed over
    blocks of rows) against ``x @ kernel``: values and gradients in both arguments
    under a vmap over environments and one over seeds, the kernel shared or per seed,
    and its values called on rows directly."""
    x = jax.random.normal(jax.random.key(0), (2, envs, 30, 16))  # [seeds, envs, rows, K]
    kernel = jax.random.normal(jax.random.key(1), (2, 16, 8))
    weights = jax.random.normal(jax.random.key(2), (envs, 30, 8))

    def loss(x, k, product):
        return jnp.sum(jnp.tanh(jax.vmap(product, (0, None))(x, k)) * weights)

    def grads(product):
        grad = jax.value_and_grad(lambda x, k: loss(x, k, product), (0, 1))
        return jax.jit(jax.vmap(grad, (0, 0 if per_seed_kernel else None)))

    k = kernel if per_seed_kernel else kernel[0]
    got, ref = grads(_row_product)(x, k), grads(jnp.matmul)(x, k)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

    # on [envs, rows, K] without a vmap, and per seed directly
    np.testing.assert_allclose(_row_product(x[0], kernel[0]), x[0] @ kernel[0], rtol=1e-6)
    per_seed = jax.vmap(_row_product)(x[:, 0], kernel)
    np.testing.assert_allclose(per_seed, x[:, 0] @ kernel, rtol=1e-6)


@pytest.mark.parametrize("width", [1, 2, 7, 8])
def test_narrow_product_gradient_is_the_products(width):
    """`_narrow_product` (the head's product, its tangent in ``x`` written as
    multiply-sums) against ``x @ kernel``: values, reverse-mode gradients under a vmap
    over environments and one over seeds with per-seed kernels, and forward mode."""
    x = jax.random.normal(jax.random.key(0), (2, 5, 30, 16))  # [seeds, envs, rows, K]
    kernel = jax.random.normal(jax.random.key(1), (2, 16, width))
    weights = jax.random.normal(jax.random.key(2), (5, 30, width))

    def loss(x, k, narrow):
        out = jax.vmap(lambda xe: _narrow_product(xe, k) if narrow else xe @ k)(x)
        return jnp.sum(jnp.tanh(out) * weights)

    def grads(narrow):
        return jax.jit(jax.vmap(jax.value_and_grad(lambda x, k: loss(x, k, narrow), (0, 1))))

    got, ref = grads(True)(x, kernel), grads(False)(x, kernel)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    tangents = (jnp.ones_like(x[0]), jnp.full_like(kernel[0], 0.5))
    _, narrow_dot = jax.jvp(_narrow_product, (x[0], kernel[0]), tangents)
    _, plain_dot = jax.jvp(jnp.matmul, (x[0], kernel[0]), tangents)
    np.testing.assert_allclose(narrow_dot, plain_dot, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("head", ["categorical", "beta"])
def test_network_gradient_with_the_grid_products(lq, macro, head, monkeypatch):
    """A rollout's gradient in the policy's parameters with the grid's products (the
    narrow head, the weight gradients in row blocks) and with XLA's own
    (`_NARROW_MAX` = 0, `_WEIGHT_GRAD_BLOCKS` = 0)."""
    game = lq if head == "categorical" else macro
    cfg = NetworkConfig(head=head, hidden=(16, 16), embed_dim=8)
    params = init_params(cfg, game, jax.random.key(0))

    def grad():
        build_module.cache_clear()
        run = rollout_fn(game, network_policy(cfg, game), num_envs=4)  # 4 S rows: blocked

        def loss(p):  # the policies and the agent's (differentiable) mean fields
            t = run(p, jax.random.key(1))
            return jnp.sum(jnp.sin(3.0 * t.policy)) + jnp.sum(jnp.cos(t.mu))

        return jax.jit(jax.grad(loss))(params)

    narrow = grad()
    monkeypatch.setattr(mfax.networks, "_NARROW_MAX", 0)
    monkeypatch.setattr(mfax.networks, "_WEIGHT_GRAD_BLOCKS", 0)
    plain = grad()
    build_module.cache_clear()
    for a, b in zip(jax.tree_util.tree_leaves(narrow), jax.tree_util.tree_leaves(plain)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(narrow)) > 0


@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("state_input", ["index", "values"])
def test_factored_network_equals_naive(lq, recurrent, state_input):
    cfg = NetworkConfig(
        recurrent=recurrent, state_input=state_input, hidden=(16, 16), gru_hidden=8, embed_dim=8
    )
    naive = NetworkConfig(**{**cfg.to_dict(), "factored": False})
    params = init_params(cfg, lq, jax.random.key(0))
    carry = jnp.full((8,), 0.3) if recurrent else ()
    obs = jnp.asarray([0.37])
    p1, c1 = NetworkApply(cfg, lq)(params, carry, obs, 3)
    p2, c2 = NetworkApply(naive, lq)(params, carry, obs, 3)
    assert p1.shape == (lq.num_states, lq.num_actions)
    np.testing.assert_allclose(p1, p2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.sum(p1, -1), 1.0, atol=1e-5)
    # the observation matters: another observation gives other probabilities
    p3, _ = NetworkApply(cfg, lq)(params, carry, jnp.asarray([0.9]), 3)
    assert float(jnp.abs(p3 - p1).max()) > 1e-4


def test_beta_head_is_softmax_of_beta_log_density(macro):
    cfg = NetworkConfig(head="beta", hidden=(16,), embed_dim=8)
    params = init_params(cfg, macro, jax.random.key(1))
    probs, _ = NetworkApply(cfg, macro)(params, (), jnp.asarray([0.05, 1.2]), 0)
    assert probs.shape == (macro.num_states, macro.num_actions)
    # reproduce from the head's concentrations
    module = build_module(cfg, macro)
    _, inter = module.apply(
        params,
        (),
        jnp.asarray([0.05, 1.2]),
        jnp.asarray(macro.state_features()),
        capture_intermediates=True,
    )
    raw = np.asarray(inter["intermediates"]["head"]["__call__"][0], np.float64)
    a, b = 1 + np.logaddexp(0, raw[:, 0]), 1 + np.logaddexp(0, raw[:, 1])
    x = np.asarray(macro.action_values(), np.float64)
    logits = (a[:, None] - 1) * np.log(x) + (b[:, None] - 1) * np.log1p(-x)
    ref = np.exp(logits - logits.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, ref, rtol=1e-4, atol=1e-5)


def test_beta_head_needs_unit_interval_actions(lq):
    with pytest.raises(ValueError, match="head.*beta.*categorical"):
        init_params(NetworkConfig(head="beta"), lq, jax.random.key(0))


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(state_input="onehot"), "state_input.*index or values"),
        (dict(head="gauss"), "head.*categorical or beta"),
        (dict(hidden=()), "hidden"),
        (dict(hidden=(16, 0)), "hidden"),
        (dict(gru_hidden=-1), "gru_hidden"),
        (dict(activation="swish"), "activation"),
    ],
)
def test_network_config_validation(bad, match):
    with pytest.raises(ValueError, match=match):
        NetworkConfig(**bad)
    with pytest.raises(ValueError, match="unknown key.*'width'.*allowed keys"):
        NetworkConfig.from_dict({"width": 3})


def test_recurrent_carry_resets_between_episodes(lq):
    cfg = NetworkConfig(recurrent=True, hidden=(16,), gru_hidden=8, embed_dim=8)
    params = init_params(cfg, lq, jax.random.key(0))
    policy = network_policy(cfg, lq, params)
    assert np.all(np.asarray(initial_carry_fn(cfg)()) == 0)
    # at t = 0 any carry is replaced by the initial one
    p_dirty, _ = policy.apply(params, jnp.ones(8), jnp.asarray([0.5]), 0)
    p_clean, _ = policy.apply(params, initial_carry_fn(cfg)(), jnp.asarray([0.5]), 0)
    np.testing.assert_array_equal(p_dirty, p_clean)
    # ... but later the history matters
    p_late_dirty, _ = policy.apply(params, jnp.ones(8), jnp.asarray([0.5]), 4)
    p_late_clean, _ = policy.apply(params, jnp.zeros(8), jnp.asarray([0.5]), 4)
    assert float(jnp.abs(p_late_dirty - p_late_clean).max()) > 1e-5
    # a rollout starts every episode from the initial carry: two rollouts with the same
    # key give the same trajectory, and the policy at t = 0 is the fresh-carry policy
    run = jax.jit(rollout_fn(lq, policy, num_envs=3))
    t1, t2 = run(params, jax.random.key(5)), run(params, jax.random.key(5))
    np.testing.assert_array_equal(t1.policy, t2.policy)
    for e in range(3):
        fresh, _ = policy.apply(params, initial_carry_fn(cfg)(), t1.obs[0, e], 0)
        np.testing.assert_allclose(t1.policy[0, e], fresh, rtol=1e-6, atol=1e-7)


# --- the architecture, pinned (issue 10: the published MFAX network's layout) -------------
def _np_probs(p, obs, carry, recurrent, act=lambda x: np.maximum(x, 0.0)):
    """Numpy forward pass written from the architecture's description: linear state
    embedding and linear observation embedding (recurrent: GRU -> act -> dense -> linear
    embedding), concatenated, then the MLP over ``hidden`` and the categorical head."""
    p = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float64), p["params"])
    state_emb = p["state_embed"]["embedding"]  # [S, E]
    x = np.asarray(obs, np.float64)
    if recurrent:  # flax's GRUCell: r, z gates; n = tanh(W_in x + r * (W_hn h + b_hn))
        g = p["gru"]
        h = np.asarray(carry, np.float64)
        dense = lambda name, v, bias=True: v @ g[name]["kernel"] + (g[name]["bias"] if bias else 0)  # noqa: E731
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        r = sig(dense("ir", x) + dense("hr", h, False))
        z = sig(dense("iz", x) + dense("hz", h, False))
        n = np.tanh(dense("in", x) + r * dense("hn", h))
        h = (1 - z) * n + z * h
        x = act(h) @ p["gru_out"]["kernel"] + p["gru_out"]["bias"]
    obs_emb = x @ p["obs_embed"]["kernel"] + p["obs_embed"]["bias"]
    cat = np.concatenate([state_emb, np.tile(obs_emb, (state_emb.shape[0], 1))], 1)
    y = act(cat @ p["first"]["kernel"] + p["first"]["bias"])
    i = 1
    while f"hidden_{i}" in p:
        y = act(y @ p[f"hidden_{i}"]["kernel"] + p[f"hidden_{i}"]["bias"])
        i += 1
    logits = y @ p["head"]["kernel"] + p["head"]["bias"]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("recurrent", [False, True])
def test_architecture_layers_and_forward_pass(lq, recurrent):
    cfg = NetworkConfig(recurrent=recurrent, hidden=(24, 20), embed_dim=16, gru_hidden=32)
    params = init_params(cfg, lq, jax.random.key(3))
    shapes = jax.tree_util.tree_map(np.shape, params["params"])
    # two embeddings of embed_dim: the state index's, and the observation's (recurrent: of
    # dense(act(GRU state)), a layer of gru_hidden) ...
    assert shapes["state_embed"]["embedding"] == (lq.num_states, 16)
    assert shapes["obs_embed"]["kernel"] == ((32 if recurrent else lq.obs_dim), 16)
    # ... concatenated into the MLP over `hidden`, then the head
    assert shapes["first"]["kernel"] == (32, 24)
    assert shapes["hidden_1"]["kernel"] == (24, 20)
    assert "hidden_2" not in shapes
    assert shapes["head"]["kernel"] == (20, lq.num_actions)
    if recurrent:
        assert shapes["gru_out"]["kernel"] == (32, 32)
        assert shapes["gru"]["ir"]["kernel"] == (lq.obs_dim, 32)  # the GRU reads the observation
    else:
        assert "gru" not in shapes and "gru_out" not in shapes
    # the categorical head's bias starts small and non-zero (as published)
    bias = np.asarray(params["params"]["head"]["bias"])
    assert 0 < np.abs(bias).max() < 0.1
    carry = jnp.linspace(-0.5, 0.5, 32) if recurrent else ()
    obs = jnp.asarray([0.37])
    probs, new_carry = NetworkApply(cfg, lq)(params, carry, obs, 2)
    np.testing.assert_allclose(
        probs, _np_probs(params, obs, carry, recurrent), rtol=2e-4, atol=1e-6
    )
    if recurrent:
        assert new_carry.shape == (32,) and float(jnp.abs(new_carry - carry).max()) > 1e-4


def test_published_sizes_by_default(lq):
    """The default is the published network: embeddings of 64 and an MLP of 128, 128 (the
    published 128-128-128), a GRU of 128 whose state goes through a dense layer of 128."""
    from mfax.training import TrainConfig

    net = TrainConfig(algo="rspg").network(lq)
    shapes = jax.tree_util.tree_map(np.shape, init_params(net, lq, jax.random.key(0))["params"])
    assert shapes["state_embed"]["embedding"] == (lq.num_states, 64)
    assert shapes["obs_embed"]["kernel"] == (128, 64)
    assert shapes["gru_out"]["kernel"] == (128, 128)
    assert shapes["first"]["kernel"] == (128, 128) and shapes["hidden_1"]["kernel"] == (128, 128)
    assert "hidden_2" not in shapes and net.activation == "relu"


def test_state_values_input_is_linear(macro):
    """``state_input="values"``: a linear layer on the normalised state values (no activation)."""
    cfg = NetworkConfig(state_input="values", head="beta", hidden=(16,), embed_dim=8)
    params = init_params(cfg, macro, jax.random.key(2))
    module = build_module(cfg, macro)
    feats = jnp.asarray(macro.state_features())
    part = module.apply(params, feats, method=module.state_part)
    p = params["params"]["state_dense"]
    np.testing.assert_allclose(part, feats @ p["kernel"] + p["bias"], rtol=1e-5, atol=1e-6)
