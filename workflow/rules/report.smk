# Reports depend on report code only: restyling them never retrains or re-evaluates.
rule report:
    input:
        metrics="reports/{game}/{run}/metrics.json",
        curve="reports/{game}/{run}/curve.csv",
        trajectory="data/{game}/{run}/trajectory.nc",
    output:
        report="reports/{game}/{run}/report.html",
        figures=directory("reports/{game}/{run}/figures"),
    params:
        code=code_hash(ROOT, "report"),
    shell:
        "mfax report --metrics {input.metrics:q} --curve {input.curve:q} "
        "--trajectory {input.trajectory:q} --out {output.report:q}"


rule summary:
    input:
        metrics=[r.metrics for r in RUNS],
        curves=[r.curve for r in RUNS],
    output:
        SUMMARY_OUTPUTS,
    params:
        code=code_hash(ROOT, "summary"),
    localrule: True
    shell:
        "mfax summary --out {output[0]:q} {input.metrics:q}"
