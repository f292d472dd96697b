"""Game registry: `make_game(name, **overrides)` and `list_games()`.

The registry knows each game's parameter class (JAX-free, `mfax.games.params`)
and where its JAX code lives, so that names and parameters can be checked
(`canonical_name`, `make_params`) without importing JAX; `make_game` imports
the game's module.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mfax.games.params import (
    BeachBarParams,
    CrowdRingParams,
    GameParams,
    LinearQuadraticParams,
    MacroParams,
    RockPaperScissorsParams,
    SusceptibleInfectedParams,
)

if TYPE_CHECKING:
    from mfax.games.base import Game

#: name -> (parameter class, "module:class" of the game)
_REGISTRY: dict[str, tuple[type[GameParams], str]] = {
    "linear_quadratic": (LinearQuadraticParams, "mfax.games.linear_quadratic:LinearQuadratic"),
    "beach_bar_1d": (BeachBarParams, "mfax.games.beach_bar:BeachBar1D"),
    "macro": (MacroParams, "mfax.games.macro:Macro"),
    "crowd_ring": (CrowdRingParams, "mfax.games.crowd_ring:CrowdRing"),
    "susceptible_infected": (
        SusceptibleInfectedParams,
        "mfax.games.susceptible_infected:SusceptibleInfected",
    ),
    "rock_paper_scissors": (
        RockPaperScissorsParams,
        "mfax.games.rock_paper_scissors:RockPaperScissors",
    ),
}
#: other accepted names (the seed calls the macro game "endogenous")
ALIASES = {"endogenous": "macro", "sis": "susceptible_infected", "rps": "rock_paper_scissors"}


def list_games() -> list[str]:
    return list(_REGISTRY)


def canonical_name(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown game {name!r}; allowed: {', '.join(list_games())} "
            f"(aliases: {', '.join(f'{a} = {b}' for a, b in ALIASES.items())})"
        )
    return name


def make_params(name: str, **overrides: Any) -> GameParams:
    """The validated parameters of game ``name`` (no JAX): every parameter of
    docs/games.md can be overridden; sizes beyond the machine are refused here."""
    params = _REGISTRY[canonical_name(name)][0].from_overrides(**overrides)
    params.check_size()  # a clear error before anything is allocated
    return params


def make_game(name: str, **overrides: Any) -> Game:
    """Build a game by name; every parameter of docs/games.md can be overridden."""
    params = make_params(name, **overrides)
    module, cls = _REGISTRY[canonical_name(name)][1].split(":")
    return getattr(importlib.import_module(module), cls)(params)


def check_game_size(game: Game, num_envs: int = 1, envs_name: str | None = None) -> None:
    """`GameParams.check_size` for a built game and ``num_envs`` environments (named
    ``envs_name``)."""
    game.params.check_size(int(num_envs), envs_name)


def __getattr__(name: str) -> Any:
    if name == "Game":  # the JAX interface, imported on first use
        from mfax.games.base import Game

        return Game
    if name in ("TabularGame", "make_tabular_game"):  # user-supplied arrays (JAX)
        from mfax.games import tabular

        return getattr(tabular, name)
    raise AttributeError(f"module 'mfax.games' has no attribute {name!r}")


__all__ = [
    "Game",
    "GameParams",
    "TabularGame",
    "make_tabular_game",
    "make_game",
    "make_params",
    "list_games",
    "canonical_name",
    "check_game_size",
]
