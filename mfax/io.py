"""mfax's file input and output: user YAML, atomic writes and training curves.

One module for what every reader and writer of files shares (no JAX here):

- **YAML typed by a user** (config files, ``params.yaml``, ``--set`` /
  ``--param``): `read_yaml`, `loads`, `parse_value`.  PyYAML implements YAML
  1.1, whose float pattern needs a dot and a signed exponent, so ``1e-3`` or
  ``3E-4`` come back as strings.  `SafeLoader` here adds the YAML 1.2 float
  pattern, so every usual notation (``1e-3``, ``3E-4``, ``1.0e+6``, ``.5``,
  ``-2.``) is a float, while ``nan`` and ``inf`` (also in the YAML spellings
  ``.nan`` / ``.inf``) are floats that validators reject as "expected a finite
  number".  Every place that reads user input goes through these.
- **Atomic writes**: `atomic_write` writes a temporary file in the destination
  folder, fsyncs it and renames it over the destination (``os.replace``), so a
  reader never sees half a file under the final name and a failed write leaves
  the old file as it was.
- **Training curves** (``curve.csv``): `curve_csv` and `read_curve`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# --- YAML typed by a user -------------------------------------------------------------------
_FLOAT = re.compile(
    r"""^(?:
      [-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?  # 1.5 .5 1. 1.5e-3
    | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+                     # 1e-3  3E4
    | [-+]?\.?(?:inf|Inf|INF)                              # inf  .inf
    | \.?(?:nan|NaN|NAN)                                   # nan  .nan
    )$""",
    re.X,
)


class SafeLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that reads every float notation as a float (YAML 1.2 style)."""


# replace the YAML 1.1 float resolver of the parent (keys are first characters)
SafeLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
SafeLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789.inIN"))


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node).replace("_", "").lower().lstrip("+")
    if text.lstrip("-").lstrip(".") in ("inf", "nan"):
        sign = -1.0 if text.startswith("-") else 1.0
        return sign * float(text.lstrip("-").lstrip("."))
    return float(text)


SafeLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def loads(text: str) -> Any:
    """Parse YAML text (numbers in every notation)."""
    return yaml.load(text, Loader=SafeLoader)


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


# --- atomic writes --------------------------------------------------------------------------
def read_json_description(file: Path, format_name: str, what: str) -> dict:
    """A JSON description whose ``"format"`` is ``format_name`` (agent.json,
    training_state.json); a corrupt or foreign file is a ValueError naming it."""
    try:
        desc = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{file}: not valid JSON (truncated or corrupt?): {e}") from None
    if not isinstance(desc, dict) or desc.get("format") != format_name:
        raise ValueError(f'{file}: not an {what} (expected "format": "{format_name}")')
    return desc


def atomic_write(path: Path | str, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; agents are shared artefacts
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --- training curves ------------------------------------------------------------------------
def curve_csv(rows: Iterable[Mapping[str, Any]], columns: list[str] | None = None) -> str:
    """The CSV text of curve rows (floats written exactly, by ``repr``)."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else ["iteration", "seconds", "exploitability"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: (repr(float(row[k])) if isinstance(row.get(k), float) else row.get(k))
                for k in columns
            }
        )
    return buf.getvalue()


def read_curve(path: Path | str) -> list[dict[str, float]]:
    """The rows of a curve.csv (``iteration`` an int, every other column a float; empty
    cells left out); ``[]`` if the file does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return [
            {
                k: (int(v) if k == "iteration" else float(v))
                for k, v in row.items()
                if v not in ("", None)
            }
            for row in csv.DictReader(f)
        ]


__all__ = [
    "SafeLoader",
    "atomic_write",
    "curve_csv",
    "loads",
    "parse_value",
    "read_curve",
    "read_yaml",
]
