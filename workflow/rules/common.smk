# Shared by all rules: the grid and configs come from params/ via mfax.pipeline
# (the same code that generates dvc.yaml).
#
# When does a job rerun? When an output is missing, when its params change
# (the run's resolved config, the evaluation settings, a hash of the code it
# runs), when an upstream job reruns, or when an input's content changes.
# Not because of file times alone: every input is a file (no directories),
# and Snakemake compares an input that is newer than the outputs by checksum
# (max-checksum-file-size in workflow/profiles/default), so a `dvc checkout`
# or `git checkout` (new mtimes, same content) retrains nothing. Force a rerun
# with `snakemake -R <rule>` or `--forceall`.
import json
import os

from mfax.pipeline import AGENT_FILES, SUMMARY_OUTPUTS, Pipeline, code_hash, write_config

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
