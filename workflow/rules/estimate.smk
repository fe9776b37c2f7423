rule gather:
    input:
        dataset=DATASET,
        masks=out(LEVEL, "masks.npz"),
        submodels=submodel_files,
    output:
        behaviours=out(LEVEL, "behaviours.npz"),
    params:
        config=PARAMS,
        behaviour=config["behaviour"],
        submodel_dir=submodel_dir,
    log:
        log_path("gather.log"),
    shell:
        "{AME} gather --params {params.config} --dataset {input.dataset} --masks {input.masks} "
        "--submodels {params.submodel_dir} --out {output.behaviours} > {log} 2>&1"


rule estimate:
    input:
        behaviours=out(LEVEL, "behaviours.npz"),
        masks=out(LEVEL, "masks.npz"),
    output:
        estimates=out(LEVEL, "estimates.npz"),
        scores=out(LEVEL, "scores.csv"),
    params:
        config=PARAMS,
        estimation=config["estimation"],
    log:
        log_path("estimate.log"),
    threads: workflow.cores
    shell:
        "{AME} estimate --params {params.config} --behaviours {input.behaviours} "
        "--masks {input.masks} --out {output.estimates} --scores {output.scores} > {log} 2>&1"
