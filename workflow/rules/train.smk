rule configure:
    # one resolved training config per run; rewritten (and the run retrained)
    # only when that run's resolved config changes
    output:
        "data/{game}/{run}/config.yaml",
    params:
        config=lambda w: json.dumps(PIPE.train_config(run_of(w)), sort_keys=True),
    localrule: True
    run:
        write_config(PIPE, run_of(wildcards), output[0])


rule train:
    # all seeds of the run in one jitted, vmapped computation; GPU if JAX sees one.
    # `mfax train-seeds` replaces the whole folder models/{game}/{run} when it has
    # finished (written next to it, then renamed): no shell `rm`, no half-written model
    input:
        config="data/{game}/{run}/config.yaml",
    output:
        # DVC tracks the folder models/{game}/{run}; Snakemake names its files so
        # that downstream jobs compare them by checksum, not by modification time
        index="models/{game}/{run}/seeds.json",
        agents=expand("models/{{game}}/{{run}}/seed_{seed}/{file}", seed=PIPE.seeds,
                      file=AGENT_FILES),
    params:
        algo=lambda w: run_of(w).algo,
        out="models/{game}/{run}",
        code=code_hash(ROOT, "train"),
    threads: 1
    shell:
        "mfax train-seeds --game {wildcards.game:q} --algo {params.algo:q} "
        "--config {input.config:q} --out {params.out:q} --no-progress"
