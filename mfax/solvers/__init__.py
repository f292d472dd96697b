"""Tabular solvers for deterministic games: a registry of algorithms, one module each.

``solve_tabular(game, num_iterations, algorithm="fp", **settings)`` runs
``num_iterations`` of the algorithm as one jitted `lax.scan` and returns the
final ``[T, S, A]`` policy with the exploitability of every iterate (computed
exactly as `mfax.evaluate_policy` does).  ``list_solvers()`` names the
algorithms; ``solver_settings(name)`` their settings and defaults.

**Sweeps.** A float setting given as a 1-D array (``learning_rate=[0.1, 1, 10]``)
runs one solve per value in the same call, vmapped: every field of the result
then has a leading axis of that length.  Several swept settings must have the
same length (they are zipped, not crossed); integer settings cannot be swept.

A ``[T, S, A]`` table has no input with which to react to random draws, so
by default the game must be deterministic (no common noise;
`GameParams.deterministic_hint` says what to set).  **Common noise.** With
``noise="exact"`` a game whose common noise is finite is solved on its enumerated
noise tree (`mfax.noise_tree`): the policy is a ``[T, P, S, A]`` table, one
``[T, S, A]`` per noise path, equal on the paths that share the draws known at
``t`` (it reacts to the noise history, never to later draws), and the
exploitability is the exact adapted one (`mfax.evaluate_policy(noise="exact",
best_response="adapted")`).  `TabularSolution.paths` says which path is which.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from mfax.games import check_game_size
from mfax.games.base import Game
from mfax.noise_tree import (
    DEFAULT_MAX_PATHS,
    NoisePaths,
    enumerate_paths,
)
from mfax.solvers._core import Context, Setting, Solver
from mfax.solvers.boltzmann import BOLTZMANN, BOLTZMANN_DAMPED
from mfax.solvers.fictitious_play import FP, FP_DAMPED
from mfax.solvers.mirror_descent import OMD
from mfax.solvers.munchausen import MOMD
from mfax.solvers.policy_iteration import BPI
from mfax.solvers.prior_descent import PRIOR_DESCENT

_REGISTRY: dict[str, Solver] = {
    s.name: s for s in (FP, FP_DAMPED, OMD, MOMD, BOLTZMANN, BOLTZMANN_DAMPED, BPI, PRIOR_DESCENT)
}


class TabularSolution(NamedTuple):
    policy: jax.Array  # [T, S, A] the policy after the last iteration ([T, P, S, A] on a tree)
    exploitability: jax.Array  # [num_iterations + 1]; entry k is after k updates (0: uniform)
    policy_return: jax.Array  # [num_iterations + 1]
    #: with noise="exact": the enumerated noise paths (values, weight, node) that the
    #: policy's axis P follows; None otherwise
    paths: NoisePaths | None = None


def list_solvers() -> list[str]:
    return list(_REGISTRY)


def get_solver(name: str) -> Solver:
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; allowed: {', '.join(list_solvers())}")
    return _REGISTRY[name]


def solver_settings(name: str) -> dict[str, float]:
    """The settings of algorithm ``name`` and their defaults."""
    return {st.name: st.default for st in get_solver(name).settings}


NOISE_MODES = ("none", "exact")


def deterministic_error(game: Game) -> ValueError:
    hint = game.params.deterministic_hint()
    now = ", ".join(f"{k}={getattr(game.params, k)!r}" for k in hint)
    fix = ", ".join(f"{k}={v}" for k, v in hint.items())
    noise = game.noise
    if noise.finite:
        tree = (
            f", or solve it on its exact noise tree with noise='exact' ({noise.num_paths} "
            f"paths: {noise.describe()}; the policy then reacts to the noise drawn so far)"
        )
    else:
        tree = f" (its common noise cannot be enumerated, so noise='exact' is not possible: {noise.continuous})"
    return ValueError(
        f"solve_tabular needs a deterministic game, but {game.name!r} has random resets or "
        f"steps ({now or 'see its parameters'})"
        + (f"; make the game with {fix}" if fix else "")
        + tree
    )


def _check_tree(game: Game, max_paths: int) -> None:
    """Clear errors for ``noise="exact"`` on a game whose noise tree cannot be used."""
    hint = game.params.deterministic_hint()
    fix = ", ".join(f"{k}={v}" for k, v in hint.items())
    instead = f"make the game deterministic ({fix}) and use noise='none'" if fix else ""
    if not game.noise.finite:
        raise ValueError(
            f"solve_tabular(noise='exact') is not possible for {game.name!r}: its common noise "
            f"cannot be enumerated ({game.noise.continuous})" + (f"; {instead}" if fix else "")
        )
    n = game.noise.num_paths
    if n > max_paths:
        raise ValueError(
            f"solve_tabular(noise='exact'): {game.name!r} has {n} common-noise paths "
            f"({game.noise.describe()}), more than max_paths = {max_paths}; raise max_paths "
            f"(the tables grow as T x paths x S x A, each iteration as the paths)"
            + (f", or {instead}" if fix else "")
        )


def _check_settings(solver: Solver, given: dict[str, Any]) -> tuple[dict, dict, int | None]:
    """-> (static int settings, float settings as float32 arrays, sweep length or None)."""
    known = {st.name: st for st in solver.settings}
    for name in given:
        if name not in known:
            allowed = ", ".join(known) or "none"
            raise ValueError(
                f"solve_tabular(algorithm={solver.name!r}): unknown setting "
                f"{name!r}; its settings: {allowed}"
            )
    static, traced, length = {}, {}, None
    for name, st in known.items():
        value = given.get(name, st.default)
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.ndim > 1 or isinstance(value, (bool, np.bool_)) or arr.size == 0:
            raise ValueError(
                f"solve_tabular(algorithm={solver.name!r}): {name} = {value!r} is "
                f"not allowed; expected {st.allowed()}"
                + ("" if st.integer else " (or a 1-D array of them to sweep)")
            )
        for v in arr.reshape(-1):
            if not st.ok(float(v)):
                raise ValueError(
                    f"solve_tabular(algorithm={solver.name!r}): {name} = "
                    f"{float(v) if arr.ndim else value!r} is not allowed; "
                    f"expected {st.allowed()}"
                )
        if st.integer:
            if arr.ndim:
                raise ValueError(
                    f"solve_tabular(algorithm={solver.name!r}): {name} = {value!r} "
                    "cannot be swept (it sets the loop's structure); expected "
                    f"{st.allowed()}"
                )
            static[name] = int(arr)
        else:
            if arr.ndim:
                if length is not None and arr.size != length:
                    raise ValueError(
                        f"solve_tabular(algorithm={solver.name!r}): swept settings must have one "
                        f"length; {name} has {arr.size} values, another {length}"
                    )
                length = arr.size
            traced[name] = arr.astype(np.float32)
    return static, traced, length


def solve_tabular(
    game: Game,
    num_iterations: int = 200,
    algorithm: str = "fp",
    *,
    gamma: float | None = None,
    noise: str = "none",
    max_paths: int = DEFAULT_MAX_PATHS,
    **settings: Any,
) -> TabularSolution:
    """Approximate the mean-field Nash equilibrium of a deterministic game, or with
    ``noise="exact"`` of a game with finite common noise on its noise tree (at most
    ``max_paths`` paths; see the module docstring).

    ``algorithm`` is one of `list_solvers()`; ``settings`` are its settings
    (`solver_settings`), a float setting given as a 1-D array sweeps it (see the
    module docstring).  ``gamma`` defaults to the game's discount.
    """
    if not isinstance(algorithm, str):
        raise ValueError(
            f"algorithm = {algorithm!r} is not allowed; expected one of "
            f"{', '.join(list_solvers())} (the discount is the keyword gamma=)"
        )
    solver = get_solver(algorithm)
    if not isinstance(noise, str) or noise not in NOISE_MODES:
        raise ValueError(
            f"noise = {noise!r} is not allowed; expected 'none' (a deterministic game) or "
            "'exact' (the enumerated common-noise tree)"
        )
    if noise == "none" and game.has_random_reset:
        raise deterministic_error(game)
    if (not isinstance(max_paths, int) or isinstance(max_paths, bool)) or max_paths < 1:
        raise ValueError(f"max_paths = {max_paths!r} is not allowed; expected an integer >= 1")
    paths = None
    if noise == "exact":
        _check_tree(game, max_paths)
        paths = enumerate_paths(game, max_paths)
        check_game_size(game, paths.weight.shape[0], "the number of common-noise paths")
    if (
        not isinstance(num_iterations, (int, np.integer))
        or isinstance(num_iterations, bool)
        or num_iterations < 1
    ):
        raise ValueError(
            f"num_iterations = {num_iterations!r} is not allowed; expected an integer >= 1"
        )
    gamma = game.default_discount if gamma is None else gamma
    if (
        isinstance(gamma, bool)
        or not isinstance(gamma, (int, float, np.number))
        or not (math.isfinite(gamma) and 0.0 < gamma <= 1.0)
    ):
        raise ValueError(f"gamma = {gamma!r} is not allowed; expected a finite number in (0, 1]")
    static, traced, _ = _check_settings(solver, settings)
    swept = tuple(sorted(k for k, v in traced.items() if v.ndim))
    fn = _jitted_solve(
        game,
        solver.name,
        int(num_iterations),
        float(gamma),
        tuple(sorted(static.items())),
        swept,
        max_paths if noise == "exact" else None,
    )
    return fn({k: jnp.asarray(v) for k, v in traced.items()})._replace(paths=paths)


def solve_fn(
    game: Game,
    solver: Solver,
    num_iterations: int,
    gamma: float,
    static: dict[str, int],
    paths: NoisePaths | None = None,
):
    """The pure ``settings -> TabularSolution`` (float settings as traced scalars): jit it,
    vmap it over a setting, or call it inside a larger program.  ``paths``
    (`mfax.noise_tree.enumerate_paths`): solve on that noise tree."""
    ctx = Context(game, gamma, paths)

    def solve(traced):
        s = {**traced, **static}

        def iteration(state, k):
            ev = ctx.evaluate(solver.policy(ctx, state, s))
            result = ev.result
            return solver.update(ctx, state, ev, k, s), (
                result.exploitability,
                result.policy_return,
            )

        state, (expl, ret) = lax.scan(
            iteration, solver.init(ctx, s), jnp.arange(num_iterations, dtype=jnp.int32)
        )
        final = solver.policy(ctx, state, s)
        last = ctx.evaluate(final).result
        return TabularSolution(
            policy=final,
            exploitability=jnp.append(expl, last.exploitability),
            policy_return=jnp.append(ret, last.policy_return),
        )

    return solve


@functools.lru_cache(maxsize=32)
def _jitted_solve(game, name, num_iterations, gamma, static, swept, max_paths):
    paths = None if max_paths is None else enumerate_paths(game, max_paths)
    solve = solve_fn(game, _REGISTRY[name], num_iterations, gamma, dict(static), paths)
    if swept:

        def axes(traced):
            return {k: (0 if k in swept else None) for k in traced}

        return jax.jit(lambda traced: jax.vmap(solve, in_axes=(axes(traced),))(traced))
    return jax.jit(solve)


__all__ = [
    "Setting",
    "Solver",
    "TabularSolution",
    "get_solver",
    "list_solvers",
    "solve_fn",
    "solve_tabular",
    "solver_settings",
]
