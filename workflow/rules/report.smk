rule evaluate:
    input:
        dataset=DATASET,
        masks=MASKS,
        behaviours=BEHAVIOURS,
        estimates=ESTIMATES,
    output:
        metrics="results/metrics.json",
        curve="results/budget_curve.csv",
        per_query="results/metrics_per_query.csv",
    params:
        config=PARAMS,
        estimation=config["estimation"],
        evaluation=config["evaluation"],
    log:
        "logs/evaluate.log",
    threads: workflow.cores
    shell:
        "{AME} evaluate --params {params.config} --dataset {input.dataset} --masks {input.masks} "
        "--behaviours {input.behaviours} --estimates {input.estimates} "
        "--metrics {output.metrics} --curve {output.curve} --per-query {output.per_query} "
        "> {log} 2>&1"


rule report:
    input:
        dataset=DATASET,
        estimates=ESTIMATES,
        metrics="results/metrics.json",
        curve="results/budget_curve.csv",
        per_query="results/metrics_per_query.csv",
    output:
        report="results/report.md",
        plots=directory("results/plots"),
    params:
        config=PARAMS,
    log:
        "logs/report.log",
    shell:
        "{AME} report --params {params.config} --dataset {input.dataset} "
        "--estimates {input.estimates} --metrics {input.metrics} --curve {input.curve} "
        "--per-query {input.per_query} --out {output.report} --plots-dir {output.plots} "
        "> {log} 2>&1"
