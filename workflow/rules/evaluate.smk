rule evaluate:
    input:
        index="models/{game}/{run}/seeds.json",
        agents=expand("models/{{game}}/{{run}}/seed_{seed}/{file}", seed=PIPE.seeds,
                      file=AGENT_FILES),
    output:
        metrics="reports/{game}/{run}/metrics.json",
        curve="reports/{game}/{run}/curve.csv",
        trajectory="data/{game}/{run}/trajectory.nc",
    params:
        model="models/{game}/{run}",
        # removed by mfax evaluate-pair when the model cannot be evaluated (no stale report)
        report="reports/{game}/{run}/report.html",
        num_envs=EVAL["num_envs"],
        seed=EVAL["seed"],
        episodes=EVAL["episodes"],
        code=code_hash(ROOT, "evaluate"),
    shell:
        "mfax evaluate-pair --agent {params.model:q} --num-envs {params.num_envs:q} "
        "--seed {params.seed:q} --episodes {params.episodes:q} --metrics {output.metrics:q} "
        "--curve {output.curve:q} --trajectory {output.trajectory:q} --report {params.report:q}"
