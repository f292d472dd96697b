"""mfax.threefry: random bits on CPU unrolled, and still the same bits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.random import threefry_2x32
from jax.interpreters import mlir

import mfax.games.base  # registers the unrolled lowering, as for every mfax program
import mfax.threefry

ROTATIONS = [(13, 15, 26, 6), (17, 29, 16, 24)]


def threefry_numpy(key: tuple[int, int], x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Threefry-2x32 with 20 rounds (Salmon et al. 2011), written out in NumPy."""
    ks = [np.uint32(key[0]), np.uint32(key[1])]
    ks.append(ks[0] ^ ks[1] ^ np.uint32(0x1BD11BDA))
    x = [x0.astype(np.uint32) + ks[0], x1.astype(np.uint32) + ks[1]]
    for block in range(5):
        for r in ROTATIONS[block % 2]:
            x[0] = x[0] + x[1]
            x[1] = (x[1] << np.uint32(r)) | (x[1] >> np.uint32(32 - r))
            x[1] = x[0] ^ x[1]
        x[0] = x[0] + ks[(block + 1) % 3]
        x[1] = x[1] + ks[(block + 2) % 3] + np.uint32(block + 1)
    return np.stack(x)


def test_the_unrolled_rule_is_registered_and_the_cpu_program_has_no_loop():
    assert mfax.threefry.UNROLLED  # a JAX release without the private rule fails here, loudly
    text = jax.jit(lambda k: jax.random.uniform(k, (8,))).lower(jax.random.key(0)).as_text()
    assert "threefry" in text and "stablehlo.while" not in text


@pytest.mark.parametrize(
    "key, count, expected",
    [  # the known-answer vectors of Random123 (threefry2x32_20)
        ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ],
)
def test_known_answers(key, count, expected):
    hashed = jax.jit(threefry_2x32)(jnp.asarray(key, jnp.uint32), jnp.asarray(count, jnp.uint32))
    assert [int(v) for v in hashed] == list(expected)
    np.testing.assert_array_equal(
        threefry_numpy(key, np.array([count[0]]), np.array([count[1]]))[:, 0], expected
    )


def test_many_counts_equal_the_numpy_reference():
    rng = np.random.default_rng(0)
    for _ in range(5):
        key = tuple(int(k) for k in rng.integers(0, 2**32, 2, dtype=np.uint64))
        count = rng.integers(0, 2**32, 2 * 4099, dtype=np.uint64).astype(np.uint32)
        hashed = jax.jit(threefry_2x32)(jnp.asarray(key, jnp.uint32), jnp.asarray(count))
        half = count.size // 2
        np.testing.assert_array_equal(
            np.asarray(hashed), threefry_numpy(key, count[:half], count[half:]).reshape(-1)
        )


def test_draws_equal_jax_rolled_loop_bit_for_bit():
    """Every kind of draw mfax makes, compiled with JAX's rolled CPU loop and unrolled."""
    tf = pytest.importorskip("jax._src.random.threefry2x32")
    if jax.default_backend() != "cpu" or not hasattr(tf, "_threefry2x32_cpu_lowering_rule"):
        pytest.skip("JAX's rolled CPU rule is not there to compare with")

    def draws(key):
        k = jax.random.split(key, 6)
        return (
            jax.random.uniform(k[0], (3, 257)),
            jax.random.normal(k[1], (1000,)),
            jax.random.truncated_normal(k[2], -2.0, 2.0, (64, 33)),
            jax.random.categorical(k[3], jnp.log(jnp.arange(1.0, 12.0)), shape=(4, 32)),
            jax.random.permutation(k[4], 960),
            jax.random.bits(k[5], (17,)),
        )

    keys = jax.random.split(jax.random.key(7), 3)
    rolled = tf._threefry2x32_cpu_lowering_rule
    try:
        mlir.register_lowering(tf.threefry2x32_p, rolled, platform="cpu")
        lowered = jax.jit(jax.vmap(lambda k: draws(k))).lower(keys)  # a new function: traced anew
        assert "stablehlo.while" in lowered.as_text()  # JAX's loop really is what is compared
        before = lowered.compile()(keys)
    finally:
        mfax.threefry.use_unrolled_threefry()
    lowered = jax.jit(jax.vmap(lambda k: draws(k))).lower(keys)
    assert "stablehlo.while" not in lowered.as_text()
    after = lowered.compile()(keys)
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
