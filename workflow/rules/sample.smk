# Masks of every subset to train (the budget rounded up to whole training jobs), in one artifact.
# A checkpoint: the training jobs are read from it (in a hierarchy the point level's budget
# depends on the sources selected upstream).
checkpoint sample:
    input:
        dataset=DATASET,
        selection=selection,
    output:
        masks=out(LEVEL, "masks.npz"),
    params:
        config=PARAMS,
        sampling=config["sampling"],
        hierarchy=config["hierarchy"] if HIERARCHICAL else None,
        per_job=PER_JOB,
        level=level_of,
        selection=lambda wildcards, input: " ".join(f"--selection {p}" for p in input.selection),
    log:
        log_path("sample.log"),
    shell:
        "{AME} sample --params {params.config} --dataset {input.dataset} --out {output.masks} "
        "--level {params.level} {params.selection} > {log} 2>&1"
