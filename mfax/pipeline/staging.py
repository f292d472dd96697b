"""Stage outputs replaced as a whole: a new folder is written next to the old one, then
swapped in by renames, and outputs that are stale after a failure are removed.

Used by ``mfax train-seeds`` (the model folder) and ``mfax evaluate-run`` (stale
results of a model that cannot be evaluated); nothing here imports JAX.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def staging_dir(out: str | os.PathLike) -> Path:
    """A new empty folder next to ``out`` to write its replacement into (then `replace_dir`).

    Made before any work starts, so an output that is an existing file or lies in an
    unwritable place fails at once (`ValueError`), not after training.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is an existing file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as err:
        raise ValueError(f"cannot write the output folder {str(out)!r}: {err.strerror}") from None
    os.chmod(staged, 0o755)  # mkdtemp makes 0700 folders; models are shared artefacts
    return staged


def replace_dir(staged: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Put the finished folder ``staged`` in place of ``out`` (whatever ``out`` held before,
    e.g. the seeds of an older grid, is removed), by renames in the same folder: at no
    moment does ``out`` hold a mix of old and new files."""
    staged, out = Path(staged), Path(out)
    old = None
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.rename(out, old)
    os.rename(staged, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def remove_outputs(*paths: str | os.PathLike) -> list[str]:
    """Remove files or folders (stale outputs); returns those that existed."""
    removed = []
    for p in map(Path, paths):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()
        else:
            continue
        removed.append(str(p))
    return removed
