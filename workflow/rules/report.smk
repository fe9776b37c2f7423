# One report for the study; in a hierarchy or a two-stage design it also reads the other levels'
# results (sources and flat; the screen).
OTHER_LEVELS = [level for level in LEVELS if level != "points"]
# the mislabels step's outputs, by the report's option (training.training_points)
MISLABEL_FILES = (
    {"mislabels": out("points", "mislabels.csv"), "mislabels-summary": out("points", "mislabels.json")}
    if TRAINING_POINTS
    else {}
)


rule report:
    input:
        dataset=DATASET,
        estimates=out("points", "estimates.npz"),
        metrics=out("points", "metrics.json"),
        curve=out("points", "budget_curve.csv"),
        per_query=out("points", "metrics_per_query.csv"),
        validation=validation_files("points").values(),
        levels=[
            out(level, name)
            for level in OTHER_LEVELS
            for name in ("estimates.npz", "metrics.json", "budget_curve.csv")
        ]
        + [validation_files(level)["validation"] for level in OTHER_LEVELS if level in VALIDATED_LEVELS],
        mislabels=MISLABEL_FILES.values(),
    output:
        report="results/report.md",
        plots=directory("results/plots"),
    params:
        ame=AME,
        config=PARAMS,
        levels=" ".join(
            f"--level-name {level} --level-dir results/{level}" for level in OTHER_LEVELS
        ),
        validation=" ".join(
            f"--{flag} {path}" for flag, path in validation_files("points").items()
        ),
        mislabels=" ".join(f"--{flag} {path}" for flag, path in MISLABEL_FILES.items()),
    log:
        "logs/report.log",
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} report --params {params.config} --dataset {input.dataset} "
        "--estimates {input.estimates} --metrics {input.metrics} --curve {input.curve} "
        "--per-query {input.per_query} --out {output.report} --plots-dir {output.plots} "
        "{params.levels} {params.validation} {params.mislabels} > {log} 2>&1"
