"""Code hashes: which code each stage runs, and a content hash of it.

`CODE_DEPS` names, per stage, the files and folders of the code that the stage's
command runs.  Snakemake hashes their content into the rule's params (`code_hash`:
a job reruns when the code it runs changes) and dvc.yaml lists them as deps.
Keep each list to the code the stage runs: the stage layout (`mfax.pipeline.dvc`),
params loading and the CLI are in no stage's list, so editing them reruns no job.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

#: Code each stage runs (files or folders, relative to the repository root): the modules
#: its command imports and calls, as far as they shape its outputs. Left out on purpose:
#: the CLI wrappers (mfax/cli*.py), the package __init__ files and the version, and the
#: pipeline's own plumbing (params loading, runs, dvc.yaml generation, code hashes, job
#: timings), so that editing them reruns no job; report code is absent from train/evaluate, so
#: restyling reports reruns the report stages only. tests/test_pipeline.py checks that
#: every mfax module a stage imports is listed or left out on purpose.
CODE_DEPS = {
    "configure": ["mfax/pipeline/params.py", "mfax/pipeline/runs.py", "mfax/io.py"],
    "train": [
        "mfax/games",
        "mfax/training",
        "mfax/rl",
        "mfax/dynamics.py",
        "mfax/evaluation.py",
        "mfax/policies.py",
        "mfax/networks.py",
        "mfax/network_config.py",
        "mfax/agents.py",
        "mfax/noise_tree.py",
        "mfax/noise_bracket.py",
        "mfax/sharding.py",
        "mfax/xla.py",
        "mfax/threefry.py",
        "mfax/multiseed.py",
        "mfax/algorithms.py",
        "mfax/io.py",
        "mfax/outputs.py",
        "mfax/pipeline/staging.py",
    ],
    "evaluate": [
        "mfax/games",
        "mfax/training",
        "mfax/dynamics.py",
        "mfax/evaluation.py",
        "mfax/xla.py",
        "mfax/threefry.py",
        "mfax/policies.py",
        "mfax/networks.py",
        "mfax/network_config.py",
        "mfax/noise_tree.py",
        "mfax/noise_bracket.py",
        "mfax/sharding.py",
        "mfax/agents.py",
        "mfax/multiseed.py",
        "mfax/algorithms.py",
        "mfax/io.py",
        "mfax/pipeline/netcdf.py",
        "mfax/pipeline/evaluate.py",
        "mfax/pipeline/staging.py",
    ],
    "report": ["mfax/pipeline/reports.py", "mfax/pipeline/netcdf.py", "mfax/io.py"],
    "summary": ["mfax/pipeline/reports.py", "mfax/io.py"],
}


def code_files(root: str | os.PathLike, deps: Iterable[str]) -> list[Path]:
    root = Path(root)
    files: list[Path] = []
    for dep in deps:
        p = root / dep
        if p.is_dir():
            files.extend(sorted(f for f in p.rglob("*.py") if "__pycache__" not in f.parts))
        elif p.exists():
            files.append(p)
    return files


def code_hash(root: str | os.PathLike, stage: str) -> str:
    """Content hash of a stage's code (Snakemake reruns a rule when its params change)."""
    h = hashlib.sha256()
    for f in code_files(root, CODE_DEPS[stage]):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]
