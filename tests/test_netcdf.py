"""Trajectory files: documented dims / coords / variables, CF attributes, atomic compressed writes."""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
import xarray as xr

import mfax
from mfax.pipeline.netcdf import DIMS, VARIABLES, trajectory_dataset, write_netcdf


@pytest.fixture(scope="module")
def evaluated():
    out = {}
    for name, kw in [
        ("linear_quadratic", dict(num_states=9, horizon=5)),
        ("macro", dict(num_wealth=6, num_income=3, num_actions=4, horizon=4)),
    ]:
        game = mfax.make_game(name, **kw)
        out[name] = (
            game,
            mfax.evaluate_policy(game, mfax.uniform_policy(game), jax.random.key(0), num_envs=3),
        )
    return out


@pytest.mark.parametrize("name", ["linear_quadratic", "macro"])
def test_dataset_layout_and_roundtrip(tmp_path, evaluated, name):
    game, result = evaluated[name]
    ds = trajectory_dataset(
        game,
        result,
        episodes=2,
        gamma=0.9,
        attrs={"algorithm": "uniform", "seed": 3, "seeds": [3, 4]},
    )
    path = write_netcdf(ds, tmp_path / "sub" / "trajectory.nc")
    assert sorted(os.listdir(path.parent)) == ["trajectory.nc"]  # no temp file left behind

    with xr.open_dataset(path) as back:  # plain xarray, no mfax needed
        back = back.load()
    T, S, A = game.horizon, game.num_states, game.num_actions
    assert dict(back.sizes) == {
        "episode": 2,
        "time": T,
        "state": S,
        "action": A,
        "obs": game.obs_dim,
    }
    assert set(DIMS) <= set(back.dims)
    assert set(VARIABLES) <= set(back.data_vars)
    assert back["mu"].dims == ("episode", "time", "state")
    assert back["policy"].dims == ("episode", "time", "state", "action")
    assert back["reward"].dims == ("episode", "time", "state", "action")
    assert back["exploitability_per_state"].dims == ("episode", "state")
    assert back["best_response_action"].dtype.kind == "i"
    np.testing.assert_allclose(back["mu"].sum("state"), 1.0, atol=1e-5)
    np.testing.assert_allclose(back["policy"].sum("action"), 1.0, atol=1e-5)
    assert list(back["obs"].values) == list(game.obs_names)
    for cname, (values, attrs) in game.state_coords().items():
        np.testing.assert_allclose(back[cname].values, values)
        assert back[cname].dims == ("state",)
        assert back[cname].attrs["long_name"] == attrs["long_name"]
    if name == "macro":
        assert {"wealth", "income"} <= set(back.coords)
    np.testing.assert_allclose(back["action_value"].values, game.action_values())
    for v in back.data_vars.values():
        assert v.attrs.get("long_name") and "units" in v.attrs, v.name
        assert v.encoding.get("zlib") is True, v.name
    a = back.attrs
    assert a["game"] == game.name and a["algorithm"] == "uniform" and a["seed"] == 3
    assert json.loads(a["game_parameters"]) == game.params.to_dict()
    assert json.loads(a["seeds"]) == [3, 4]
    assert a["mfax_version"] == mfax.__version__ and a["Conventions"].startswith("CF")
    assert a["discount"] == pytest.approx(0.9)
    assert a["evaluated_episodes"] == 3 and a["stored_episodes"] == 2
    # values match the evaluation they came from (episode-major)
    np.testing.assert_allclose(
        back["policy_value"].values,
        np.swapaxes(np.asarray(result.policy_value), 0, 1)[:2],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        back["exploitability"].values, np.asarray(result.per_env_exploitability)[:2], rtol=1e-6
    )


def test_atomic_write_leaves_old_file_on_failure(tmp_path, evaluated, monkeypatch):
    game, result = evaluated["linear_quadratic"]
    ds = trajectory_dataset(game, result)
    path = write_netcdf(ds, tmp_path / "trajectory.nc")
    before = path.read_bytes()

    def boom(self, *args, **kwargs):
        open(args[0], "wb").write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", boom)
    with pytest.raises(OSError, match="disk full"):
        write_netcdf(ds, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["trajectory.nc"]


def test_deterministic_bytes(tmp_path, evaluated):
    game, result = evaluated["linear_quadratic"]
    a = write_netcdf(trajectory_dataset(game, result), tmp_path / "a.nc").read_bytes()
    b = write_netcdf(trajectory_dataset(game, result), tmp_path / "b.nc").read_bytes()
    assert a == b  # same evaluation, same file: DVC sees no change
