"""PEP 562 lazy packages: a package's public names import their module on first use,
so that importing the package (``mfax``, ``mfax.training``, ``mfax.rl``) loads no JAX."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from typing import Any


def lazy_getattr(
    namespace: dict[str, Any], exports: dict[str, str], *, submodules: bool = False
) -> Callable[[str], Any]:
    """The module ``__getattr__`` of the package whose globals are ``namespace``:
    ``exports`` maps a public name to the module defining it; with ``submodules`` an
    unknown name may also be a submodule (``mfax.training``).  A loaded name is kept in
    the package's globals, so later lookups skip this function."""
    package = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
        elif (
            submodules
            and not name.startswith("_")
            and importlib.util.find_spec(f"{package}.{name}") is not None
        ):
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    return __getattr__
