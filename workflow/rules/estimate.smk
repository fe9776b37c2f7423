rule gather:
    input:
        dataset=DATASET,
        masks=MASKS,
        submodels=all_submodels(),
    output:
        behaviours=BEHAVIOURS,
    params:
        config=PARAMS,
        budget=N_SUBSETS,
        behaviour=config["behaviour"],
        submodel_dir=SUBMODEL_DIR,
    log:
        "logs/gather.log",
    shell:
        "{AME} gather --params {params.config} --dataset {input.dataset} --masks {input.masks} "
        "--submodels {params.submodel_dir} --out {output.behaviours} > {log} 2>&1"


rule estimate:
    input:
        behaviours=BEHAVIOURS,
        masks=MASKS,
    output:
        estimates=ESTIMATES,
        scores="results/scores.csv",
    params:
        config=PARAMS,
        estimation=config["estimation"],
    log:
        "logs/estimate.log",
    threads: workflow.cores
    shell:
        "{AME} estimate --params {params.config} --behaviours {input.behaviours} "
        "--masks {input.masks} --out {output.estimates} --scores {output.scores} > {log} 2>&1"
