"""Spreading the environments of a batch over every local device (`jax.sharding`).

Rollouts and evaluations are vectorised over environments; `shard_envs` puts a
sharding constraint on that axis (a one-axis mesh ``"env"`` over
``jax.local_devices()``), so that under ``jit`` XLA splits the environments
across devices and reduces means over them with collectives.  Parameters stay
replicated.  With one device, or when the number of environments is not a
multiple of the device count, it is the identity: nothing changes.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

ENV_AXIS = "env"


@functools.lru_cache(maxsize=1)
def env_mesh() -> Mesh:
    """The one-axis mesh over this process's devices."""
    return Mesh(np.asarray(jax.local_devices()), (ENV_AXIS,))


def env_sharding() -> NamedSharding:
    """Leading axis split over `env_mesh`, the rest replicated."""
    return NamedSharding(env_mesh(), PartitionSpec(ENV_AXIS))


def shard_envs(tree: Any, num_envs: int) -> Any:
    """Constrain every leaf of ``tree`` (leading axis: the ``num_envs`` environments) to
    be split over the local devices; the identity on one device or when ``num_envs`` is
    not a multiple of the device count."""
    devices = jax.local_device_count()
    if devices == 1 or num_envs % devices:
        return tree
    return jax.lax.with_sharding_constraint(tree, env_sharding())


def replicate(tree: Any) -> Any:
    """Every leaf of ``tree`` (a training state) copied to all local devices, so that
    compiled steps see one device set; the identity on one device."""
    if jax.local_device_count() == 1:
        return tree
    return jax.device_put(tree, NamedSharding(env_mesh(), PartitionSpec()))
