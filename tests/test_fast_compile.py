"""`fast_compile`: every program a trainer compiles gets XLA's backend optimisation (and
on CPU its MLIR fusion emitters) off, and the numbers stay those of the optimised build
(float rounding apart). Without it a trainer's one-off `init` and its evaluations get
XLA's older CPU emitters (`mfax.xla.OLD_EMITTERS`); for `init` they must give the very
same bits. SPG / RSPG's training step hands XLA's library its matrix products alone
(`mfax.xla.LIBRARY_DOTS_ONLY`), with the same numbers up to rounding."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_resume import rl_config, spg_config

import mfax
from mfax.algorithms import get_algorithm
from mfax.multiseed import init_seeds, train_seeds
from mfax.rl import RLConfig
from mfax.training import TrainConfig, run_training
from mfax.xla import LIBRARY_DOTS_ONLY, OLD_EMITTERS, compiler_options, known_to_xla

MACRO = {"num_wealth": 6, "num_income": 3, "num_actions": 4, "horizon": 4}
FAST = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}


@pytest.fixture
def compile_options(monkeypatch):
    """The compiler options of every `jax.jit(...)` call and AOT `.compile()` made."""
    seen = []
    jit, compile_ = jax.jit, jax.stages.Lowered.compile

    def spy_jit(fun, *args, **kwargs):
        seen.append(kwargs.get("compiler_options"))
        return jit(fun, *args, **kwargs)

    def spy_compile(self, compiler_options=None, **kwargs):
        seen.append(compiler_options)
        return compile_(self, compiler_options, **kwargs)

    monkeypatch.setattr(jax, "jit", spy_jit)
    monkeypatch.setattr(jax.stages.Lowered, "compile", spy_compile)
    return seen


def test_every_training_program_compiles_fast(compile_options):
    # the two drivers, each with one algorithm family (the options come from the config)
    cfg = spg_config(fast_compile=True, num_iterations=2, eval_every=2)
    train_seeds(cfg, [0, 1], progress=False)
    assert compile_options.count(FAST) >= 4, compile_options  # init, advance, evaluate, params
    compile_options.clear()
    cfg = rl_config("ippo", fast_compile=True, num_iterations=2, eval_every=2)
    run_training(cfg, seed=5, progress=False)
    assert compile_options.count(FAST) >= 4, compile_options


@pytest.mark.slow  # ~35 s (two default-option builds); CI runs it
def test_init_and_evaluations_get_the_old_emitters_by_default(compile_options):
    # init and evaluate with them; advance, the parameters' conversion, eager calls without
    known_to_xla(*next(iter(LIBRARY_DOTS_ONLY.items())))  # its probe compiles with the option:
    compile_options.clear()  # done once here, so that what follows sees the trainers' programs
    train_seeds(spg_config(num_iterations=2, eval_every=2), [0, 1], progress=False)
    assert compile_options.count(OLD_EMITTERS) == 2, compile_options
    assert LIBRARY_DOTS_ONLY in compile_options  # the training step
    compile_options.clear()
    run_training(rl_config("ippo", num_iterations=2, eval_every=2), seed=5, progress=False)
    assert compile_options.count(OLD_EMITTERS) == 2, compile_options
    assert FAST not in compile_options
    assert LIBRARY_DOTS_ONLY not in compile_options  # slower for the model-free learners


def test_which_programs_get_library_dots_only():
    assert known_to_xla(*next(iter(LIBRARY_DOTS_ONLY.items())))  # the XLA mfax installs
    assert TrainConfig().compiler_options() == LIBRARY_DOTS_ONLY
    assert TrainConfig().compiler_options(old_emitters=True) == OLD_EMITTERS  # init, evaluate
    assert TrainConfig(fast_compile=True).compiler_options() == FAST
    assert RLConfig(algo="ippo").compiler_options() is None


def test_options_unknown_to_xla_are_left_out(monkeypatch):
    assert not known_to_xla("xla_cpu_no_such_option", True)
    assert not known_to_xla(next(iter(LIBRARY_DOTS_ONLY)), "LIBRARY_FUSION_TYPE_NO_SUCH_TYPE")
    monkeypatch.setattr("mfax.xla.LIBRARY_DOTS_ONLY", {"xla_cpu_no_such_option": True})
    assert compiler_options(False, library_dots_only=True) is None
    assert compiler_options(False, old_emitters=True, library_dots_only=True) == OLD_EMITTERS


@pytest.mark.parametrize("algo", ["spg", "rspg"])
def test_library_dots_only_computes_the_same_step(algo):
    cfg = dataclasses.replace(spg_config(), algo=algo)
    trainer = get_algorithm(algo).make_train(cfg)
    state = trainer.init(jax.random.key(4))
    losses = []
    for options in (None, LIBRARY_DOTS_ONLY):
        step = jax.jit(trainer.iteration, compiler_options=options)
        s, loss = step(state, None)
        s, loss2 = step(s, None)
        losses.append([float(loss), float(loss2)])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-5)


@pytest.mark.parametrize(
    "config",
    [
        # the GRU's orthogonal initialiser, a macro game; the RL learners' critic and buffer
        lambda: TrainConfig(
            algo="rspg", game="macro", game_params=MACRO, hidden=(16,), embed_dim=8, gru_hidden=8
        ),
        lambda: rl_config("ippo"),
        lambda: rl_config("m_omd"),
    ],
    ids=["rspg-macro", "ippo", "m_omd"],
)
def test_init_options_give_the_same_bits(config):
    cfg = config()
    trainer = get_algorithm(cfg.algo).make_train(cfg)
    keys = jax.vmap(jax.random.key)(jnp.arange(3, dtype=jnp.uint32))
    base = jax.jit(init_seeds(trainer))(keys)
    init = jax.jit(init_seeds(trainer), compiler_options=OLD_EMITTERS)(keys)

    def bits(tree):
        return [
            np.asarray(
                jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x
            )
            for x in jax.tree_util.tree_leaves(tree)
        ]

    for a, b in zip(bits(base), bits(init), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow  # ~17 s; CI runs it (the tiny pipeline tests train with fast_compile by default)
def test_fast_compile_learns_the_same(compile_options):
    cfg = {"num_iterations": 4, "eval_every": 2}
    base = run_training(spg_config(**cfg), seed=2, progress=False)
    assert FAST not in compile_options  # off by default
    fast = run_training(spg_config(**cfg, fast_compile=True), seed=2, progress=False)
    np.testing.assert_allclose(fast.losses, base.losses, rtol=1e-4)
    for a, b in zip(fast.curve, base.curve):
        assert a["exploitability"] == pytest.approx(b["exploitability"], rel=1e-4)


@pytest.mark.parametrize("value", ["yes", 1, None])
def test_fast_compile_must_be_a_bool(value):
    with pytest.raises(ValueError, match=r"'fast_compile' = .* expected true or false"):
        TrainConfig(fast_compile=value)


@pytest.mark.parametrize(
    ("game", "modes"),
    [
        ("beach_bar_1d", [("sampled", "hindsight"), ("exact", "adapted")]),
        ("macro", [("sampled", "adapted")]),  # the bracket
    ],
)
def test_evaluation_compiles_fast_with_the_same_numbers(game, modes, compile_options):
    from mfax.games import make_game
    from mfax.policies import uniform_policy

    small = {
        "beach_bar_1d": {"num_states": 11, "horizon": 6},
        "macro": MACRO,
    }[game]
    g = make_game(game, **small)
    key = jax.random.key(3)
    for noise, response in modes:
        kw = {"noise": noise, "best_response": response}
        base = mfax.evaluate_policy(g, uniform_policy(g), key, 4, **kw)
        compile_options.clear()
        fast = mfax.evaluate_policy(g, uniform_policy(g), key, 4, **kw, fast_compile=True)
        assert FAST in compile_options, (noise, response)
        for field in ("exploitability", "exploitability_lower"):
            a, b = getattr(fast, field), getattr(base, field)
            if b is not None:
                assert float(a) == pytest.approx(float(b), rel=1e-5), field


def test_evaluation_fast_compile_must_be_a_bool():
    from mfax.games import make_game
    from mfax.policies import uniform_policy

    g = make_game("linear_quadratic", num_states=9, horizon=5)
    with pytest.raises(ValueError, match=r"fast_compile = 'yes' is not allowed"):
        mfax.evaluate_policy(g, uniform_policy(g), jax.random.key(0), 2, fast_compile="yes")


def test_evaluations_take_the_old_emitters_with_the_same_numbers(monkeypatch, compile_options):
    import mfax.evaluation
    from mfax.games import make_game
    from mfax.policies import uniform_policy

    g = make_game("beach_bar_1d", num_states=11, horizon=6)
    kw = {"noise": "exact", "best_response": "adapted"}
    mfax.evaluation._jitted_paths.cache_clear()  # jitted by an earlier test
    old = mfax.evaluate_policy(g, uniform_policy(g), jax.random.key(3), 4, **kw)
    assert compile_options == [OLD_EMITTERS]
    # the same program with XLA's defaults
    monkeypatch.setattr(mfax.evaluation, "compiler_options", lambda fast, old_emitters: None)
    mfax.evaluation._jitted_paths.cache_clear()
    default = mfax.evaluate_policy(g, uniform_policy(g), jax.random.key(3), 4, **kw)
    assert compile_options[-1] is None
    assert float(old.exploitability) == pytest.approx(float(default.exploitability), rel=1e-6)
    np.testing.assert_allclose(
        old.per_state_exploitability, default.per_state_exploitability, rtol=1e-5, atol=1e-5
    )
