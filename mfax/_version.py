"""The version of mfax, from the installed package's metadata (pyproject.toml's
``version``); a source tree that is not installed reads pyproject.toml itself.

A module of its own, importing nothing of mfax, so that anything may ask for the
version (`mfax.__version__`, agent.json, NetCDF attributes) without an import cycle.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _version() -> str:
    try:
        return version("mfax")
    except PackageNotFoundError:  # a source checkout that was not installed
        import tomllib
        from pathlib import Path

        try:
            with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as f:
                return str(tomllib.load(f)["project"]["version"])
        except (OSError, KeyError, ValueError):
            return "0+unknown"


__version__ = _version()
