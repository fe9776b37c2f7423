# Check every submodel's fingerprint and reduce their outputs to the behaviour matrix.
rule gather:
    input:
        dataset=DATASET,
        masks=out(LEVEL, "masks.npz"),
        submodels=submodel_files,
    output:
        behaviours=out(LEVEL, "behaviours.npz"),
    params:
        ame=AME,
        config=PARAMS,
        behaviour=config["behaviour"],
        submodel_dir=submodel_dir,
    log:
        log_path("gather.log"),
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} gather --params {params.config} --dataset {input.dataset} "
        "--masks {input.masks} --submodels {params.submodel_dir} --out {output.behaviours} "
        "> {log} 2>&1"
