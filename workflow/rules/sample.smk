# Masks of every subset to train (the budget rounded up to whole training jobs), in one artifact.
rule sample:
    input:
        dataset=DATASET,
    output:
        masks=MASKS,
    params:
        config=PARAMS,
        sampling=config["sampling"],
        per_job=PER_JOB,
    log:
        "logs/sample.log",
    shell:
        "{AME} sample --params {params.config} --dataset {input.dataset} --out {output.masks} "
        "> {log} 2>&1"
