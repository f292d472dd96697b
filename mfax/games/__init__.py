"""Game registry: `make_game(name, **overrides)` and `list_games()`."""

from __future__ import annotations

from typing import Any

from mfax.games.base import Game, GameParams, check_game_size
from mfax.games.beach_bar import BeachBar1D, BeachBarParams
from mfax.games.linear_quadratic import LinearQuadratic, LinearQuadraticParams
from mfax.games.macro import Macro, MacroParams

_REGISTRY: dict[str, tuple[type[Game], type[GameParams]]] = {
    "linear_quadratic": (LinearQuadratic, LinearQuadraticParams),
    "beach_bar_1d": (BeachBar1D, BeachBarParams),
    "macro": (Macro, MacroParams),
}
#: other accepted names (the seed calls the macro game "endogenous")
ALIASES = {"endogenous": "macro"}


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


def make_game(name: str, **overrides: Any) -> Game:
    """Build a game by name; every parameter of docs/games.md can be overridden."""
    game_cls, params_cls = _REGISTRY[canonical_name(name)]
    params = params_cls.from_overrides(**overrides)
    game_cls.check_size(params)  # sizes beyond the machine: a clear error before allocating
    return game_cls(params)


__all__ = ["Game", "GameParams", "make_game", "list_games", "canonical_name", "check_game_size"]
