"""The pipeline: ``params/`` -> runs -> configure, train, evaluate, report, summary.

One concept per module (none imports JAX when imported; the Snakefile imports
this package when Snakemake parses it):

- `mfax.pipeline.params`: read and check ``params/``; `Pipeline`, the grid and
  each run's resolved config (the configure stage);
- `mfax.pipeline.runs`: a `Run` of the grid and the path of every output (`PATHS`,
  from which the Snakemake rules, the dvc.yaml stages and `Run` all derive);
- `mfax.pipeline.code`: the code each stage runs (`CODE_DEPS`) and its hash;
- `mfax.pipeline.dvc`: the generator of ``dvc.yaml``;
- `mfax.pipeline.staging`: outputs written next to their place, then swapped in;
- `mfax.pipeline.evaluate`: the evaluate stage;
- `mfax.pipeline.netcdf`: trajectories as xarray Datasets / NetCDF files;
- `mfax.pipeline.reports`: HTML reports and the summary;
- `mfax.pipeline.timings`: what each job spends its time on (docs/PERFORMANCE.md).

The names below are re-exported so that ``from mfax.pipeline import X`` works for
the Snakefile, the CLI and the tests; ``netcdf`` and ``reports`` (xarray,
matplotlib) are imported from their modules.
"""

from mfax.pipeline.code import CODE_DEPS, code_files, code_hash
from mfax.pipeline.dvc import DVC_HEADER, command, dvc_stages, dvc_yaml
from mfax.pipeline.evaluate import RUN_CURVE_COLUMNS, aggregate_curves, dumps_json, evaluate_run
from mfax.pipeline.params import (
    EVALUATION_DEFAULTS,
    LAYER_SECTIONS,
    PARAMS_FILE,
    PRESETS_DIR,
    TOP_KEYS,
    ParamsError,
    Pipeline,
    check_run_piece,
    config_text,
    deep_merge,
    read_yaml,
    write_config,
)
from mfax.pipeline.runs import (
    AGENT_FILES,
    CHECKPOINT,
    JOB_THREADS,
    LOG,
    MAX_NAME,
    PATHS,
    SAFE_NAME,
    SAFE_PIECE,
    SEEDS_FILE,
    SUMMARY_LOG,
    SUMMARY_OUTPUTS,
    TIMED_STAGES,
    TIMINGS,
    Run,
    checkpoint_path,
    expected_outputs,
    format_value,
    log_path,
    model_files,
    path,
    timings_path,
)
from mfax.pipeline.staging import remove_outputs, replace_dir, staging_dir

__all__ = [
    "AGENT_FILES",
    "CHECKPOINT",
    "CODE_DEPS",
    "DVC_HEADER",
    "EVALUATION_DEFAULTS",
    "JOB_THREADS",
    "LAYER_SECTIONS",
    "LOG",
    "MAX_NAME",
    "PARAMS_FILE",
    "PATHS",
    "PRESETS_DIR",
    "RUN_CURVE_COLUMNS",
    "SAFE_NAME",
    "SAFE_PIECE",
    "SEEDS_FILE",
    "SUMMARY_LOG",
    "SUMMARY_OUTPUTS",
    "TIMED_STAGES",
    "TIMINGS",
    "TOP_KEYS",
    "ParamsError",
    "Pipeline",
    "Run",
    "aggregate_curves",
    "check_run_piece",
    "checkpoint_path",
    "code_files",
    "code_hash",
    "command",
    "config_text",
    "deep_merge",
    "dumps_json",
    "dvc_stages",
    "dvc_yaml",
    "evaluate_run",
    "expected_outputs",
    "format_value",
    "log_path",
    "model_files",
    "path",
    "read_yaml",
    "remove_outputs",
    "replace_dir",
    "staging_dir",
    "timings_path",
    "write_config",
]
