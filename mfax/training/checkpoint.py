"""The training state on disk, next to the agent: what ``mfax train --resume DIR`` reads.

Two files in the agent directory (no pickles)::

    training_state.msgpack   flax msgpack of {"state": the trainer's state pytree (parameters,
                             optimiser state, iteration, keys as raw key data, ...),
                             "losses": [iterations run], "curve": {column: [evaluations]}}
    training_state.json      format + format_version, algorithm, the full training config,
                             seed, status (ok / diverged / interrupted), iterations run, the
                             last evaluated iteration, seconds so far, the PRNG
                             implementation and the sha256 of the msgpack file

Both are written atomically, the JSON last; reading checks the checksum and
every array's shape and dtype against the state the config's trainer builds,
so a file from another config, or a truncated one, is a clear error.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import numpy as np

from mfax.io import read_json_description
from mfax.training.driver import CURVE_COLUMNS, Progress

STATE_FILE = "training_state.msgpack"
STATE_META_FILE = "training_state.json"
FORMAT_NAME = "mfax-training-state"
FORMAT_VERSION = 1
STATUSES = ("ok", "diverged", "interrupted")


@dataclasses.dataclass
class Checkpoint(Progress):
    """A saved run: `Progress` (state, curve, losses, seconds) plus what it belongs to."""

    meta: dict = dataclasses.field(default_factory=dict)  # training_state.json
    params: Any = None  # the agent saved with it (the last evaluation's parameters)

    @property
    def status(self) -> str:
        return self.meta.get("status", "ok")

    @property
    def iteration(self) -> int:
        return int(self.meta["iteration"])


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _host(state: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda x: np.asarray(jax.random.key_data(x)) if _is_key(x) else np.asarray(x),
        jax.device_get(state),
    )


def _key_impl(state: Any) -> str | None:
    keys = [x for x in jax.tree_util.tree_leaves(state) if _is_key(x)]
    return str(jax.random.key_impl(keys[0])) if keys else None


def save_checkpoint(
    path: Path | str, progress: Progress, *, config: Any, seed: int, status: str
) -> Path:
    """Write the two files into the directory ``path``; returns the JSON file's path."""
    from mfax.agents import _versions, atomic_write

    if status not in STATUSES:
        raise ValueError(f"status = {status!r} is not allowed; expected one of {STATUSES}")
    path = Path(path)
    curve = list(progress.curve)
    payload = {
        "state": flax.serialization.to_state_dict(_host(progress.state)),
        "losses": np.asarray(progress.losses, np.float32),
        "curve": {c: np.asarray([float(r[c]) for r in curve], np.float64) for c in CURVE_COLUMNS},
    }
    data = flax.serialization.msgpack_serialize(payload)
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "algorithm": config.algo,
        "config": config.to_dict(),
        "seed": int(seed),
        "status": status,
        "iteration": int(np.asarray(progress.state.step)),
        "evaluated_iteration": int(curve[-1]["iteration"]) if curve else None,
        "num_iterations": int(config.num_iterations),
        "train_seconds": float(progress.train_seconds),
        "eval_seconds": float(progress.eval_seconds),
        "key_impl": _key_impl(progress.state),
        "state_sha256": hashlib.sha256(data).hexdigest(),
        "versions": _versions(),
    }
    atomic_write(path / STATE_FILE, data)
    atomic_write(path / STATE_META_FILE, json.dumps(meta, indent=2) + "\n")
    return path / STATE_META_FILE


def read_meta(path: Path | str) -> dict:
    """training_state.json of an agent directory, checked (format, version, status)."""
    path = Path(path)
    file = path / STATE_META_FILE
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path}: not a directory written by `mfax train` (nothing to resume)"
        )
    if not file.exists():
        raise FileNotFoundError(
            f"{file}: missing; {path} holds no training state to resume "
            "(written by `mfax train` since resumption exists)"
        )
    meta = read_json_description(file, FORMAT_NAME, "mfax training state")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{file}: format_version {meta.get('format_version')!r} is not "
            f"supported (this mfax reads {FORMAT_VERSION})"
        )
    for key, kind in (
        ("algorithm", str),
        ("config", dict),
        ("seed", int),
        ("status", str),
        ("iteration", int),
        ("state_sha256", str),
    ):
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise ValueError(
                f"{file}: entry {key!r} = {meta.get(key)!r} is missing or has the wrong type"
            )
    if meta["status"] not in STATUSES:
        raise ValueError(
            f"{file}: status = {meta['status']!r}; expected one of {', '.join(STATUSES)}"
        )
    return meta


def load_checkpoint(path: Path | str, trainer: Any, meta: dict | None = None) -> Checkpoint:
    """Read the training state of ``path`` for ``trainer`` (whose ``init`` gives the
    state's structure, shapes and dtypes)."""
    path = Path(path)
    meta = read_meta(path) if meta is None else meta
    file = path / STATE_FILE
    if not file.exists():
        raise FileNotFoundError(
            f"{file}: missing (the training state described in {STATE_META_FILE})"
        )
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta["state_sha256"]:
        raise ValueError(
            f"{file}: contents do not match the sha256 recorded in "
            f"{STATE_META_FILE} (truncated, corrupt or from another run)"
        )
    try:
        payload = flax.serialization.msgpack_restore(data)
    except Exception as e:
        raise ValueError(f"{file}: cannot be read as msgpack: {type(e).__name__}: {e}") from None

    shapes = jax.eval_shape(trainer.init, jax.random.key(0))
    impl = str(jax.random.key_impl(jax.random.key(0)))
    if meta.get("key_impl") not in (None, impl):
        raise ValueError(
            f"{path / STATE_META_FILE}: key_impl {meta.get('key_impl')!r}, but "
            f"this jax uses {impl!r}"
        )
    template = jax.tree_util.tree_map(
        lambda s: jax.eval_shape(jax.random.key_data, s) if _is_key(s) else s, shapes
    )
    zeros = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), template)
    try:
        if not isinstance(payload, dict):
            raise ValueError("not a mapping")
        state = flax.serialization.from_state_dict(zeros, payload["state"])
        losses = np.asarray(payload["losses"], np.float32)
        columns = {c: np.asarray(payload["curve"][c], np.float64) for c in CURVE_COLUMNS}
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"{file}: does not fit the trainer of the saved config ({type(e).__name__}: {e})"
        ) from None
    for (where, want), have in zip(
        jax.tree_util.tree_flatten_with_path(template)[0], jax.tree_util.tree_leaves(state)
    ):
        have = np.asarray(have)
        if have.shape != want.shape or have.dtype != want.dtype:
            raise ValueError(
                f"{file}: {jax.tree_util.keystr(where)} has shape {have.shape} "
                f"{have.dtype}; the saved config's trainer needs {want.shape} "
                f"{want.dtype}"
            )
    state = jax.tree_util.tree_map(
        lambda s, x: jax.random.wrap_key_data(x, impl=impl) if _is_key(s) else jax.numpy.asarray(x),
        shapes,
        state,
    )
    n = len(columns["iteration"])
    curve = [
        {
            c: (int(columns[c][i]) if c == "iteration" else float(columns[c][i]))
            for c in CURVE_COLUMNS
        }
        for i in range(n)
    ]
    if int(np.asarray(state.step)) != meta["iteration"] or len(losses) > meta["iteration"]:
        raise ValueError(
            f"{file}: the state is at iteration {int(np.asarray(state.step))} "
            f"but {STATE_META_FILE} says {meta['iteration']}"
        )
    return Checkpoint(
        state,
        curve,
        losses,
        float(meta.get("train_seconds", 0.0)),
        float(meta.get("eval_seconds", 0.0)),
        meta,
    )
