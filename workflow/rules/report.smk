# Reports depend on report code only: restyling them never retrains or re-evaluates.
rule report:
    input:
        metrics=rules.evaluate.output.metrics,
        curve=rules.evaluate.output.curve,
        trajectory=rules.evaluate.output.trajectory,
    output:
        report=path("report"),
        figures=directory(path("figures")),
        timings=timings_path("report"),
    log:
        log_path("report"),
    params:
        code=code_hash(ROOT, "report"),
    shell:
        "mfax report --metrics {input.metrics:q} --curve {input.curve:q} "
        "--trajectory {input.trajectory:q} --out {output.report:q} "
        "--timings {output.timings:q} > {log:q} 2>&1"


rule summary:
    input:
        metrics=[r.metrics for r in RUNS],
        curves=[r.curve for r in RUNS],
        # every job's timings, shown in the summary (so it comes after the reports)
        timings=[timings_path(s, r.game, r.name) for r in RUNS for s in TIMED_STAGES],
    output:
        SUMMARY_OUTPUTS,
    log:
        SUMMARY_LOG,
    params:
        code=code_hash(ROOT, "summary"),
    localrule: True
    shell:
        "mfax summary --out {output[0]:q} {input.metrics:q} > {log:q} 2>&1"
