"""A game's common noise, declared as data: which aggregate fields are drawn, when, and
from which finite distribution (or that the noise is continuous).

Each game's parameters declare it (`mfax.games.params.GameParams.noise`), so that its
paths can be counted and checked -- ``noise: exact`` in a config, `mfax configure`, the
Snakefile -- without importing JAX; the game samples it (`CommonNoise.sample_reset`,
`CommonNoise.advance`: these import JAX when called) and `mfax.noise_tree` enumerates
it from the same declaration, so sampling and enumeration cannot disagree.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jax


@dataclasses.dataclass(frozen=True)
class NoiseDraw:
    """One finitely supported common-noise draw: the aggregate field ``field`` takes the
    value ``atoms[i]`` with probability ``probs[i]`` from time ``time`` on (0 = at reset;
    ``time = t > 0``: drawn by the step from ``t - 1`` to ``t``, so the reward of that step
    already reads it, but an agent acting at ``t - 1`` does not know it).

    ``sampler`` is how a key becomes a value, chosen so that sampling reproduces the
    published draws bit for bit: ``"cdf"`` draws ``u ~ U[0, 1)`` and takes the first atom
    whose cumulative probability exceeds ``u`` (for two atoms of 1/2, the same as
    ``jax.random.bernoulli(key)`` picking the first); ``"randint"`` is
    ``jax.random.randint`` over consecutive integer atoms of equal probability.
    """

    field: str
    time: int
    atoms: tuple
    probs: tuple[float, ...]
    dtype: str = "float32"
    sampler: str = "cdf"

    def __post_init__(self):
        if len(self.atoms) != len(self.probs) or not self.atoms:
            raise ValueError(
                f"NoiseDraw {self.field!r}: {len(self.atoms)} atoms, "
                f"{len(self.probs)} probabilities; expected one per atom"
            )
        if self.sampler == "randint" and (
            list(self.atoms) != list(range(self.atoms[0], self.atoms[0] + len(self.atoms)))
            or len(set(self.probs)) != 1
        ):
            raise ValueError(
                f"NoiseDraw {self.field!r}: sampler 'randint' needs consecutive "
                "integer atoms of equal probability"
            )
        if self.sampler not in ("cdf", "randint"):
            raise ValueError(
                f"NoiseDraw {self.field!r}: sampler = {self.sampler!r} is not "
                "allowed; expected 'cdf' or 'randint'"
            )

    @property
    def support(self) -> list[tuple[Any, float]]:
        """``(atom, probability)`` of the atoms of positive probability (a zero-probability
        branch would be a node of weight 0, whose conditional mean is undefined)."""
        return [(a, p) for a, p in zip(self.atoms, self.probs) if p > 0]

    def sample(self, key: jax.Array) -> jax.Array:
        import jax
        import jax.numpy as jnp

        if self.sampler == "randint":
            return jax.random.randint(
                key, (), self.atoms[0], self.atoms[-1] + 1, dtype=jnp.dtype(self.dtype)
            )
        cdf = jnp.cumsum(jnp.asarray(self.probs, jnp.float32))
        u = jax.random.uniform(key, (), jnp.float32)
        i = jnp.minimum(jnp.sum(cdf <= u), len(self.atoms) - 1)
        return jnp.asarray(self.atoms, jnp.dtype(self.dtype))[i]


@dataclasses.dataclass(frozen=True)
class CommonNoise:
    """A game's common noise, declared once: `reset`/`next_aggregate` sample it and
    `mfax.noise_tree` enumerates it, so the two cannot disagree.

    ``draws`` are finitely supported (an empty tuple: no common noise, one path);
    ``continuous`` (a phrase saying what the noise is) marks noise that cannot be
    enumerated, ``draws`` being then ignored.
    """

    draws: tuple[NoiseDraw, ...] = ()
    continuous: str | None = None

    @property
    def finite(self) -> bool:
        return self.continuous is None

    @property
    def reset_draws(self) -> tuple[NoiseDraw, ...]:
        return tuple(d for d in self.draws if d.time == 0)

    @property
    def later_draws(self) -> tuple[NoiseDraw, ...]:
        return tuple(d for d in self.draws if d.time > 0)

    @staticmethod
    def count(draws: tuple[NoiseDraw, ...]) -> int:
        """How many combinations of ``draws``' atoms (of positive probability) there are."""
        return math.prod(len(d.support) for d in draws)

    @property
    def num_paths(self) -> int:
        """How many paths the noise has (1 without common noise); finite noise only."""
        return self.count(self.draws)

    def describe(self) -> str:
        """``"51 (bar at t = 0) x 2 (z at t = 4)"``: the atoms of each draw (finite noise)."""
        return (
            " x ".join(f"{len(d.support)} ({d.field} at t = {d.time})" for d in self.draws)
            or "no common noise"
        )

    def sample_reset(self, key: jax.Array) -> dict[str, jax.Array]:
        """The values of the reset draws (one draw uses ``key`` itself, several split it)."""
        return _sample_all(self.reset_draws, key)

    def set_later(self, agg: Any, values: dict[str, jax.Array]) -> Any:
        """``agg`` (already at its new time) with each later draw's field set to its value
        when ``agg.t`` is that draw's time."""
        import jax.numpy as jnp

        for d in self.later_draws:
            agg = agg._replace(
                **{
                    d.field: jnp.where(
                        agg.t == d.time,
                        jnp.asarray(values[d.field], jnp.dtype(d.dtype)),
                        getattr(agg, d.field),
                    )
                }
            )
        return agg

    def advance(self, key: jax.Array, agg: Any) -> Any:
        """`set_later` with freshly sampled values (one later draw uses ``key`` itself)."""
        return self.set_later(agg, _sample_all(self.later_draws, key))


def _sample_all(draws: tuple[NoiseDraw, ...], key: jax.Array) -> dict[str, jax.Array]:
    """Each draw's value by field: one draw uses ``key`` itself (the published draws), several
    split it."""
    import jax

    keys = [key] if len(draws) == 1 else list(jax.random.split(key, len(draws)))
    return {d.field: d.sample(k) for d, k in zip(draws, keys)}
