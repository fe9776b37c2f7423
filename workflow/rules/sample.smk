# Masks of every subset to train (the run plan's budget rounded up to whole training jobs), in
# one artifact. A checkpoint: the training jobs are read from it (in a hierarchy the point
# level's budget depends on the sources selected upstream; in a two-stage design the second
# stage's subsets, where the other points are in, on the screen's candidates).
checkpoint sample:
    input:
        dataset=DATASET,
        selection=selection,
    output:
        masks=out(LEVEL, "masks.npz"),
    params:
        ame=AME,
        config=PARAMS,
        sampling=config["sampling"],
        hierarchy=config["hierarchy"] if HIERARCHICAL else None,
        stages=stage_settings,
        per_job=STORE.per_job,
        level=level_of,
        selection=lambda wildcards, input: " ".join(f"--selection {p}" for p in input.selection),
    log:
        log_path("sample.log"),
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} sample --params {params.config} --dataset {input.dataset} "
        "--out {output.masks} --level {params.level} {params.selection} > {log} 2>&1"
