# Evidence without ground truth (docs/how-to/validation.md): held-out validation
# submodels scored against the estimated effects (LDS), and counterfactual retraining without
# each query's selection. Both kinds of submodels are trained by the train rule into their own
# store ({experiment}); the estimate never reads them.


# The experiment's validation subsets: same units and design, their own stream and budget (run
# plan). A checkpoint: their training jobs are read from it.
checkpoint sample_validation:
    input:
        dataset=DATASET,
        selection=selection,
    output:
        masks=out(LEVEL, "validation_masks.npz"),
    params:
        ame=AME,
        config=PARAMS,
        sampling=config["sampling"],
        validation=config["validation"],
        hierarchy=config["hierarchy"] if HIERARCHICAL else None,
        stages=stage_settings,
        per_job=STORE.per_job,
        level=level_of,
        selection=lambda wildcards, input: " ".join(f"--selection {p}" for p in input.selection),
    log:
        log_path("sample_validation.log"),
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} sample --validation --params {params.config} --dataset {input.dataset} "
        "--out {output.masks} --level {params.level} {params.selection} > {log} 2>&1"


# The training sets of the removal arms: they follow the estimates, hence a checkpoint.
checkpoint removal:
    input:
        dataset=DATASET,
        estimates=out(LEVEL, "estimates.npz"),
    output:
        masks=out(LEVEL, "removal_masks.npz"),
        plan=out(LEVEL, "removal_plan.json"),
    params:
        ame=AME,
        config=PARAMS,
        validation=config["validation"],
        level=level_of,
    log:
        log_path("removal.log"),
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} removal --params {params.config} --dataset {input.dataset} "
        "--estimates {input.estimates} --out {output.masks} --plan {output.plan} "
        "--level {params.level} > {log} 2>&1"


# The behaviours of the validation submodels or of the removal arms, fingerprints checked.
rule gather_experiment:
    input:
        dataset=DATASET,
        masks=out(LEVEL, "{experiment}masks.npz"),
        submodels=submodel_files,
    output:
        behaviours=out(LEVEL, "{experiment}behaviours.npz"),
    wildcard_constraints:
        experiment="validation_|removal_",
    params:
        ame=AME,
        config=PARAMS,
        behaviour=config["behaviour"],
        submodel_dir=submodel_dir,
    log:
        log_path("{experiment}gather.log"),
    resources:
        mem_mb=8000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} gather --params {params.config} --dataset {input.dataset} "
        "--masks {input.masks} --submodels {params.submodel_dir} --out {output.behaviours} "
        "> {log} 2>&1"


rule validate:
    input:
        estimates=out(LEVEL, "estimates.npz"),
        prefixes=out(LEVEL, "prefix_estimates.npz"),
        masks=out(LEVEL, "masks.npz"),
        validation_masks=out(LEVEL, "validation_masks.npz"),
        validation_behaviours=out(LEVEL, "validation_behaviours.npz"),
        removal_plan=out(LEVEL, "removal_plan.json"),
        removal_behaviours=out(LEVEL, "removal_behaviours.npz"),
    output:
        summary=out(LEVEL, "validation.json"),
        per_query=out(LEVEL, "validation_per_query.csv"),
        curve=out(LEVEL, "lds_curve.csv"),
        predictions=out(LEVEL, "validation_predictions.csv"),
    params:
        ame=AME,
        config=PARAMS,
        validation=config["validation"],
    log:
        log_path("validate.log"),
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} validate --params {params.config} --estimates {input.estimates} "
        "--prefixes {input.prefixes} --masks {input.masks} "
        "--validation-masks {input.validation_masks} "
        "--validation-behaviours {input.validation_behaviours} "
        "--removal-plan {input.removal_plan} --removal-behaviours {input.removal_behaviours} "
        "--summary {output.summary} --per-query {output.per_query} --curve {output.curve} "
        "--predictions {output.predictions} > {log} 2>&1"
