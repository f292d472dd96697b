"""Output locations, checked before any work starts.

Every command that writes something calls `check_output_location` for each
output (a folder such as ``mfax train --out``, a file such as ``mfax evaluate
--json``) before it trains or evaluates anything, so that a typo in a path
fails in a second with one clear line instead of after the whole run.

A location is usable when:

- it is not an existing file where a folder is expected (or an existing folder
  where a file is expected);
- for an agent folder (kind ``"agent"``): it is new, empty or an earlier agent
  (holds ``agent.json`` or ``weights.msgpack``), so that ``--out .`` or
  ``--out reports/`` cannot overwrite files that belong to something else;
- it exists, or its nearest existing ancestor is a folder (not a file) in
  which folders can be created;
- the folder it is written into accepts new files (tested by creating and
  deleting a temporary file, which is what the atomic writes of
  `mfax.agents.atomic_write` need: an existing file is replaced, never
  appended to).

Nothing is created by the check itself.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

KINDS = ("dir", "file", "agent")


class OutputLocationError(ValueError):
    """An output location that cannot be written; the message names the option and path."""


def _writable(folder: Path) -> str | None:
    """None if a file can be created (and removed) in ``folder``, else the reason."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".mfax-write-test.", dir=folder)
    except OSError as err:
        return err.strerror or str(err)
    os.close(fd)
    try:
        os.unlink(tmp)
    except OSError:
        pass
    return None


def check_output_location(path: str | Path, kind: str = "dir", option: str = "output") -> Path:
    """Check that ``path`` can be written as a ``kind`` ("dir", "file" or "agent": a folder
    that is new, empty or an earlier agent) output.

    Raises `OutputLocationError` (a ValueError) naming ``option`` (e.g.
    ``"--out"``) and the path; returns the path.
    """
    if kind not in KINDS:
        raise ValueError(f"check_output_location: kind = {kind!r}; expected one of {KINDS}")
    if str(path).strip() == "":
        raise OutputLocationError(f"{option}: an empty path is not allowed")
    path = Path(path)
    where = f"{option} {str(path)!r}"
    want = "a file" if kind == "file" else "a directory"
    if path.exists() or path.is_symlink():
        if kind != "file" and not path.is_dir():
            raise OutputLocationError(
                f"{where} is an existing file, not a directory; "
                "choose another path or remove the file"
            )
        if kind == "file" and path.is_dir():
            raise OutputLocationError(
                f"{where} is an existing directory, not a file; "
                "give a file name (e.g. inside that directory)"
            )
        if kind == "file" and not path.is_file():
            raise OutputLocationError(f"{where} exists but is not a regular file")
        if kind == "agent":
            _check_agent_folder(path, where)
    # the folder the output's files go into, and its nearest existing ancestor
    target_dir = path if kind == "dir" else path.parent
    probe = target_dir if str(target_dir) else Path(".")
    missing = []
    while not (probe.exists() or probe.is_symlink()):
        missing.append(probe.name)
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        if probe.exists():
            raise OutputLocationError(
                f"{where} cannot be created as {want}: {str(probe)!r} is a file, not a folder"
            )
        raise OutputLocationError(f"{where}: {str(probe)!r} is a broken link")
    reason = _writable(probe)
    if reason is not None:
        raise OutputLocationError(
            f"{where} cannot be written: folder {str(probe)!r} is not writable ({reason})"
        )
    return path


def _check_agent_folder(path: Path, where: str) -> None:
    from mfax.agents import DESCRIPTION_FILE, WEIGHTS_FILE

    try:
        names = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    except OSError as err:
        raise OutputLocationError(f"{where} cannot be read: {err.strerror}") from None
    if names and not {DESCRIPTION_FILE, WEIGHTS_FILE} & set(names):
        shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        raise OutputLocationError(
            f"{where} is an existing folder that is not an mfax agent (it holds {len(names)} "
            f"other entr{'y' if len(names) == 1 else 'ies'}: {shown}); an agent is written to a "
            "new or empty folder, or over an earlier agent: choose another path"
        )


def check_output_locations(*locations: tuple[str | Path | None, str, str]) -> None:
    """`check_output_location` for each ``(path, kind, option)``; ``None`` paths are skipped."""
    for path, kind, option in locations:
        if path is not None:
            check_output_location(path, kind, option)


__all__ = ["OutputLocationError", "check_output_location", "check_output_locations"]
