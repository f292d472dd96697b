"""`NetworkConfig`: the settings of a mean-field policy network, declared and validated
once, without JAX (the training configs and params.yaml checks use them too; the
network itself is built in `mfax.networks`, docs/algorithms.md#network)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

STATE_INPUTS = ("index", "values")
HEADS = ("categorical", "beta")
#: names of the activations `mfax.networks` maps to flax functions
ACTIVATIONS = ("relu", "tanh", "gelu", "silu")


def _positive_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1


def layer_sizes(prefix: str, name: str, value: Any) -> tuple[int, ...]:
    """``value`` as a tuple of layer sizes, or a ValueError naming ``prefix`` and ``name``."""
    if (
        isinstance(value, (str, bytes))
        or not isinstance(value, Sequence)
        or not value
        or not all(_positive_int(x) for x in value)
    ):
        raise ValueError(
            f"{prefix}: {name!r} = {value!r} is not allowed; expected a non-empty "
            "list of integers >= 1, e.g. [128, 128]"
        )
    return tuple(int(x) for x in value)


def check_network_settings(
    prefix: str, values: dict[str, Any], heads: Sequence[str] = HEADS
) -> dict[str, Any]:
    """Validate network settings (any subset of `NetworkConfig`'s fields) and return them
    normalised (lists -> tuples, numpy ints -> int); errors name ``prefix``, the key, the
    value and what is allowed."""

    def bad(name: str, allowed: str) -> ValueError:
        return ValueError(
            f"{prefix}: {name!r} = {values[name]!r} is not allowed; expected {allowed}"
        )

    out = dict(values)
    for name in ("recurrent", "factored"):
        if name in values and not isinstance(values[name], bool):
            raise bad(name, "true or false")
    if "state_input" in values and values["state_input"] not in STATE_INPUTS:
        raise bad("state_input", " or ".join(STATE_INPUTS))
    if "hidden" in values:
        out["hidden"] = layer_sizes(prefix, "hidden", values["hidden"])
    for name in ("embed_dim", "gru_hidden"):
        if name in values:
            if not _positive_int(values[name]):
                raise bad(name, "an integer >= 1")
            out[name] = int(values[name])
    if "head" in values and values["head"] not in heads:
        raise bad("head", " or ".join(heads))
    if "activation" in values and values["activation"] not in ACTIVATIONS:
        raise bad("activation", " or ".join(ACTIVATIONS))
    return out


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """Architecture of a mean-field policy network (independent of the game's sizes).

    The defaults are the published MFAX network (docs/LEARNING.md)."""

    recurrent: bool = False
    state_input: str = "index"
    #: MLP after the state and observation embeddings (the published 128-128-128 network)
    hidden: tuple[int, ...] = (128, 128)
    embed_dim: int = 64
    gru_hidden: int = 128
    head: str = "categorical"
    activation: str = "relu"
    factored: bool = True

    def __post_init__(self):
        for name, value in check_network_settings("network", dataclasses.asdict(self)).items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkConfig:
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(allowed))
        if unknown:
            raise ValueError(
                f"network: unknown key(s) {', '.join(map(repr, unknown))}; "
                f"allowed keys: {', '.join(allowed)}"
            )
        return cls(**d)
