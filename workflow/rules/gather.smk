# Check every submodel's fingerprint and reduce their outputs to the behaviour matrix (and, with
# training.training_points, their outputs on the training points to own-label probabilities).
rule gather:
    input:
        dataset=DATASET,
        masks=out(LEVEL, "masks.npz"),
        submodels=submodel_files,
    output:
        behaviours=out(LEVEL, "behaviours.npz"),
        **({"training_points": out(LEVEL, "training_points.npz")} if TRAINING_POINTS else {}),
    params:
        ame=AME,
        config=PARAMS,
        behaviour=config["behaviour"],
        submodel_dir=submodel_dir,
        training_points=lambda wildcards, output: (
            f"--training-points {output.training_points}" if TRAINING_POINTS else ""
        ),
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
        "{params.training_points} > {log} 2>&1"
