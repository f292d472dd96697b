# Shared by all rules: the grid and configs come from params/ via mfax.pipeline
# (the same code that generates dvc.yaml), read with mfax's YAML reader and
# validated in full (run names, every run's training config) before any job runs.
#
# When does a job rerun? When an output is missing, when its params change
# (the run's resolved config, the evaluation settings, a hash of the code it
# runs), when an upstream job reruns, or when an input's content changes.
# Not because of file times alone: every input is a file (no directories),
# and Snakemake compares an input that is newer than the outputs by checksum
# (max-checksum-file-size in workflow/profiles/default), so a `dvc checkout`
# or `git checkout` (new mtimes, same content) retrains nothing. Force a rerun
# with `snakemake -R <rule>` or `--forceall`.
#
# Every path is defined once, in mfax.pipeline.runs: the rules use its templates
# (path("metrics") is "reports/{game}/{run}/metrics.json", {game} and {run} being
# the wildcards), as do Run's properties and the dvc.yaml generator.  Each job
# writes what it prints to its log: log_path("train") is logs/{game}/{run}/train.log
# (git-ignored; shown when a job fails: show-failed-logs in the profiles).
#
# Shell commands quote every substitution ({...:q}); run names are checked to
# be plain words anyway (mfax.pipeline.SAFE_NAME).
import json
import os

from snakemake.exceptions import WorkflowError

from mfax.pipeline import (
    JOB_THREADS, SUMMARY_LOG, SUMMARY_OUTPUTS, TIMED_STAGES, ParamsError, Pipeline,
    checkpoint_path, code_hash, log_path, model_files, path, timings_path, write_config,
)

# several jobs may share one GPU: do not let each JAX process grab 75% of its memory
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

ROOT = os.path.dirname(workflow.basedir)  # the repository (the Snakefile is in workflow/)
# JAX's persistent compilation cache, shared by all jobs and kept between runs: a job
# whose computation an earlier job or run compiled (same shapes, same code) loads it
# instead of compiling again. Project-local and git-ignored; delete it at will.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(ROOT, ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.1")
try:
    PIPE = Pipeline.from_snakemake(ROOT, workflow.config_settings.configfiles,
                                   workflow.config_settings.config)
except ParamsError as err:
    raise WorkflowError(str(err)) from None
RUNS = PIPE.runs()
EVAL = PIPE.evaluation


def run_of(wildcards):
    return PIPE.run(wildcards.game, wildcards.run)


wildcard_constraints:
    game="|".join(PIPE.games),
    run="[A-Za-z0-9._=+-]+",
