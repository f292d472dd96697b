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
        num_envs=EVAL["num_envs"],
        seed=EVAL["seed"],
        episodes=EVAL["episodes"],
        code=code_hash(ROOT, "evaluate"),
    shell:
        "mfax evaluate-pair --agent models/{wildcards.game}/{wildcards.run} --num-envs {params.num_envs} "
        "--seed {params.seed} --episodes {params.episodes} --metrics {output.metrics} "
        "--curve {output.curve} --trajectory {output.trajectory}"
