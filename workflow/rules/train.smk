rule configure:
    # one resolved training config per run; rewritten (and the run retrained)
    # only when that run's resolved config changes
    output:
        path("config"),
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
        config=rules.configure.output[0],
    output:
        # DVC tracks the folder models/{game}/{run}; Snakemake names its files
        # (seeds.json, seed_<s>/...) so that downstream jobs compare them by
        # checksum, not by modification time
        model_files(PIPE.seeds),
        # what the job spent its time on (mfax.pipeline.timings; not a DVC metric)
        timings=timings_path("train"),
    log:
        log_path("train"),
    params:
        algo=lambda w: run_of(w).algo,
        out=path("model"),
        # a retried, preempted or killed job continues from here (not an output)
        checkpoint=checkpoint_path(),
        code=code_hash(ROOT, "train"),
    # JAX computes on this many threads (mfax --threads; JOB_THREADS says why); more
    # per job, and other bits, with `snakemake --set-threads train=N`
    threads: JOB_THREADS
    # every train job before the evaluate and report jobs: the long jobs first, the
    # short ones then fill the cores to the end (docs/PERFORMANCE.md, "Train jobs first")
    priority: 1
    shell:
        "mfax --threads {threads:q} train-seeds --game {wildcards.game:q} --algo {params.algo:q} "
        "--config {input.config:q} --out {params.out:q} --no-progress "
        "--timings {output.timings:q} --checkpoint {params.checkpoint:q} > {log:q} 2>&1"
