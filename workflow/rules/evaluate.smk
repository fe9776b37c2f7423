# Metrics against ground truth (when the dataset has one) and the budget curve; fits nothing.
rule evaluate:
    input:
        dataset=DATASET,
        masks=out(LEVEL, "masks.npz"),
        behaviours=out(LEVEL, "behaviours.npz"),
        estimates=out(LEVEL, "estimates.npz"),
        prefixes=out(LEVEL, "prefix_estimates.npz"),
    output:
        metrics=out(LEVEL, "metrics.json"),
        curve=out(LEVEL, "budget_curve.csv"),
        per_query=out(LEVEL, "metrics_per_query.csv"),
    params:
        ame=AME,
        config=PARAMS,
        estimation=config["estimation"],
    log:
        log_path("evaluate.log"),
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} evaluate --params {params.config} --dataset {input.dataset} "
        "--masks {input.masks} --behaviours {input.behaviours} --estimates {input.estimates} "
        "--prefixes {input.prefixes} --metrics {output.metrics} --curve {output.curve} "
        "--per-query {output.per_query} > {log} 2>&1"
