"""Evaluated mean-field trajectories as self-describing xarray Datasets / NetCDF files.

`trajectory_dataset` turns an `mfax.EvalResult` into an ``xarray.Dataset``
with dimensions ``episode, time, state, action`` (and ``obs`` for the shared
observation), the game's per-state coordinates (``game.state_coords()``:
position ``x``, or ``wealth`` and ``income`` for the macro game), CF-style
``long_name`` / ``units`` on every variable, and attributes naming the game,
algorithm, game parameters (a JSON string), seeds and the mfax version.
`write_netcdf` writes it compressed (zlib) and atomically: to a temporary
file in the destination folder, then ``os.replace``, so no half-written file
ever carries the final name.  Anyone reads it back with
``xarray.open_dataset(path)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

#: variables every trajectory file holds (tests and readers rely on these names)
VARIABLES = (
    "mu",
    "mu_final",
    "policy",
    "reward",
    "shared_obs",
    "common_noise",
    "policy_value",
    "best_response_value",
    "exploitability_per_state",
    "best_response_action",
    "exploitability",
    "policy_return",
    "best_response_return",
)
DIMS = ("episode", "time", "state", "action")


def _np(x: Any, dtype=np.float32) -> np.ndarray:
    return np.asarray(x, dtype=dtype)


def _em(x: Any, dtype=np.float32) -> np.ndarray:
    """Time-major ``[T, E, ...]`` -> episode-major ``[E, T, ...]``."""
    return np.swapaxes(_np(x, dtype), 0, 1)


def trajectory_dataset(
    game,
    result,
    *,
    episodes: int | None = None,
    gamma: float | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """The Dataset of an evaluation (``result``: `mfax.EvalResult` on ``game``).

    ``episodes`` keeps only the first episodes (common-noise samples) to bound
    the file size; the ``exploitability`` attribute is always the mean over
    all evaluated episodes.  ``attrs`` adds global attributes (algorithm,
    seed, ...); non-string values are stored as JSON strings.
    """
    import mfax

    traj = result.trajectory
    E = int(np.shape(traj.mu)[1])
    n = E if episodes is None else max(1, min(int(episodes), E))
    T, S, A = game.horizon, game.num_states, game.num_actions
    sl = slice(0, n)

    mu = _em(traj.mu)[sl]
    mu0 = mu[:, 0]
    v = _em(result.policy_value)[sl]
    v_star = _em(result.best_response_value)[sl]
    obs_names = list(getattr(game, "obs_names", ())) or [f"obs{i}" for i in range(game.obs_dim)]

    def var(dims, data, long_name, units, **extra):
        return (dims, data, {"long_name": long_name, "units": units, **extra})

    data_vars = {
        "mu": var(
            ("episode", "time", "state"),
            mu,
            "mean field: share of the population in each state",
            "1",
        ),
        "mu_final": var(
            ("episode", "state"),
            _np(traj.mu_final)[sl],
            "mean field after the last step (t = T)",
            "1",
        ),
        "policy": var(
            ("episode", "time", "state", "action"),
            _em(traj.policy)[sl],
            "action probabilities of the evaluated policy",
            "1",
        ),
        "reward": var(
            ("episode", "time", "state", "action"),
            _em(traj.reward)[sl],
            "reward of each state and action given the mean-field path",
            "utility",
        ),
        "shared_obs": var(
            ("episode", "time", "obs"),
            _em(traj.raw_obs)[sl],
            "shared observation in natural units (policy input before normalisation)",
            "mixed (see obs coordinate)",
        ),
        "common_noise": var(
            ("episode", "time"), _em(traj.common_noise)[sl], "common noise z_t", "1"
        ),
        "policy_value": var(
            ("episode", "time", "state"),
            v,
            "discounted value V_t of the policy on the frozen mean-field path",
            "utility",
        ),
        "best_response_value": var(
            ("episode", "time", "state"),
            v_star,
            "discounted best-response value V*_t on the frozen mean-field path",
            "utility",
        ),
        "exploitability_per_state": var(
            ("episode", "state"),
            _np(result.per_state_exploitability)[sl],
            "V*_0 - V_0 per initial state",
            "utility",
        ),
        "best_response_action": var(
            ("episode", "time", "state"),
            _em(result.best_response_actions, np.int32)[sl],
            "best-response action (index into the action dimension)",
            "1",
        ),
        "exploitability": var(
            ("episode",),
            _np(result.per_env_exploitability)[sl],
            "exploitability of the episode: sum_s mu_0 (V*_0 - V_0)",
            "utility",
        ),
        "policy_return": var(
            ("episode",),
            np.sum(mu0 * v[:, 0], -1),
            "discounted expected return of the policy: sum_s mu_0 V_0",
            "utility",
        ),
        "best_response_return": var(
            ("episode",),
            np.sum(mu0 * v_star[:, 0], -1),
            "discounted best-response return: sum_s mu_0 V*_0",
            "utility",
        ),
    }
    coords: dict[str, Any] = {
        "episode": (
            "episode",
            np.arange(n, dtype=np.int32),
            {"long_name": "evaluation episode (common-noise sample)"},
        ),
        "time": ("time", np.arange(T, dtype=np.int32), {"long_name": "time step t", "units": "1"}),
        "state": ("state", np.arange(S, dtype=np.int32), {"long_name": "flat state index"}),
        "action": ("action", np.arange(A, dtype=np.int32), {"long_name": "action index"}),
        "action_value": (
            "action",
            _np(game.action_values()),
            {"long_name": "value of the action", "units": "1"},
        ),
        "obs": ("obs", np.asarray(obs_names, dtype=str), {"long_name": "shared observation entry"}),
    }
    for name, (values, cattrs) in game.state_coords().items():
        values = np.asarray(values)
        if values.shape != (S,):
            raise ValueError(
                f"{game.name}.state_coords()[{name!r}] has shape {values.shape}; expected ({S},)"
            )
        coords[name] = ("state", values, dict(cattrs))

    gattrs: dict[str, Any] = {
        "title": f"mfax evaluated mean-field trajectory: {game.name}",
        "Conventions": "CF-1.8",
        "game": game.name,
        "game_parameters": json.dumps(game.params.to_dict(), sort_keys=True),
        "mfax_version": mfax.__version__,
        "exploitability_mean": float(np.asarray(result.exploitability)),
        "policy_return_mean": float(np.asarray(result.policy_return)),
        "best_response_return_mean": float(np.asarray(result.best_response_return)),
        "evaluated_episodes": E,
        "stored_episodes": n,
        "note": (
            "the best response knows each sampled common-noise path in hindsight: with "
            "common noise, exploitability is an upper bound on the true one"
        ),
        "history": f"written by mfax {mfax.__version__} (no timestamp: files are reproducible)",
    }
    if gamma is not None:
        gattrs["discount"] = float(gamma)
    for key, value in (attrs or {}).items():
        gattrs[key] = (
            value
            if isinstance(value, (str, int, float)) and not isinstance(value, bool)
            else json.dumps(value, sort_keys=True)
        )
    return xr.Dataset(data_vars, coords=coords, attrs=gattrs)


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike, complevel: int = 4) -> Path:
    """Write ``ds`` zlib-compressed, atomically (temp file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    encoding = {
        name: {"zlib": True, "complevel": complevel, "shuffle": True} for name in ds.data_vars
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_netcdf(path: str | os.PathLike) -> xr.Dataset:
    """Open a trajectory file fully into memory (the file is closed on return)."""
    with xr.open_dataset(path) as ds:
        return ds.load()
