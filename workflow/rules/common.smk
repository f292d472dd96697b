# Shared by all rules: the grid and configs come from params/ via mfax.pipeline
# (the same code that generates dvc.yaml).
import json
import os

from mfax.pipeline import SUMMARY_OUTPUTS, Pipeline, code_hash, write_config

# several jobs may share one GPU: do not let each JAX process grab 75% of its memory
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

ROOT = workflow.basedir
PIPE = Pipeline.from_config(config, root=ROOT)
RUNS = PIPE.runs()
EVAL = PIPE.evaluation


def run_of(wildcards):
    return PIPE.run(wildcards.game, wildcards.run)


wildcard_constraints:
    game="|".join(PIPE.games),
    run="[^/]+",
