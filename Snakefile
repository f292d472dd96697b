# mfax pipeline: for every run of the grid in params/ (game x algorithm x sweep
# setting), configure -> train -> evaluate -> report; then one summary.
#
#   snakemake --cores 2                                       # everything (preset in params/params.yaml)
#   snakemake --cores 2 reports/beach_bar_1d/rspg/report.html # one pair
#   snakemake -n                                              # the plan
#   snakemake --cores 2 --config preset=paper                 # another preset
#   snakemake --profile workflow/profiles/slurm               # on a SLURM cluster
#
# The same stages, for `dvc repro`, are in dvc.yaml (generated: `mfax dvc-yaml`).
# Reruns are driven by content, not file times (workflow/profiles/default):
# each rule's params hold its resolved config and a hash of the code it runs.
# See docs/PIPELINE.md.

configfile: "params/params.yaml"


include: "workflow/rules/common.smk"


rule all:
    default_target: True
    input:
        [r.report for r in RUNS],
        SUMMARY_OUTPUTS,


include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
