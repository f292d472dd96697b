"""Reading what a user types: YAML files and ``key=value`` values, with numbers as numbers.

PyYAML implements YAML 1.1, whose float pattern needs a dot and a signed
exponent, so ``1e-3`` or ``3E-4`` come back as strings.  `SafeLoader` here
adds the YAML 1.2 float pattern, so every usual notation (``1e-3``, ``3E-4``,
``1.0e+6``, ``.5``, ``-2.``) is a float, while ``nan`` and ``inf`` (also in the
YAML spellings ``.nan`` / ``.inf``) are floats that validators reject as
"expected a finite number".  Every place that reads user input (config
files, ``params.yaml``, ``--set`` / ``--param``) goes through this module.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_FLOAT = re.compile(r"""^(?:
      [-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?  # 1.5 .5 1. 1.5e-3
    | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+                     # 1e-3  3E4
    | [-+]?\.?(?:inf|Inf|INF)                              # inf  .inf
    | \.?(?:nan|NaN|NAN)                                   # nan  .nan
    )$""", re.X)


class SafeLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that reads every float notation as a float (YAML 1.2 style)."""


# replace the YAML 1.1 float resolver of the parent (keys are first characters)
SafeLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT,
                                 list("-+0123456789.inIN"))


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node).replace("_", "").lower().lstrip("+")
    if text.lstrip("-").lstrip(".") in ("inf", "nan"):
        sign = -1.0 if text.startswith("-") else 1.0
        return sign * float(text.lstrip("-").lstrip("."))
    return float(text)


SafeLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def loads(text: str) -> Any:
    """Parse YAML text (numbers in every notation)."""
    return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a SafeLoader subclass


def parse_value(text: str) -> Any:
    """The value of a command-line ``key=value``: YAML scalars, lists and mappings."""
    return loads(text)


def read_yaml(path: str | Path, what: str = "config file") -> Any:
    """Read a YAML file; a missing file, a directory, binary or invalid YAML is a `ValueError`
    naming the file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} is not a file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{what} {str(path)!r} cannot be read: {err.strerror}") from None
    if b"\0" in raw:
        raise ValueError(f"{what} {str(path)!r} is a binary file, not YAML")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} {str(path)!r} is not UTF-8 text") from None
    try:
        return loads(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{what} {str(path)!r} is not valid YAML: {err}") from None
