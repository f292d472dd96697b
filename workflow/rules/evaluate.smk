rule evaluate:
    input:
        model_files(PIPE.seeds),
    output:
        metrics=path("metrics"),
        curve=path("curve"),
        trajectory=path("trajectory"),
        timings=timings_path("evaluate"),
    log:
        log_path("evaluate"),
    params:
        model=path("model"),
        # removed by mfax evaluate-run when the model cannot be evaluated (no stale report)
        report=path("report"),
        num_envs=EVAL["num_envs"],
        seed=EVAL["seed"],
        episodes=EVAL["episodes"],
        code=code_hash(ROOT, "evaluate"),
    threads: JOB_THREADS  # as train's
    shell:
        "mfax --threads {threads:q} evaluate-run --agent {params.model:q} --num-envs {params.num_envs:q} "
        "--seed {params.seed:q} --episodes {params.episodes:q} --metrics {output.metrics:q} "
        "--curve {output.curve:q} --trajectory {output.trajectory:q} --report {params.report:q} "
        "--timings {output.timings:q} > {log:q} 2>&1"
