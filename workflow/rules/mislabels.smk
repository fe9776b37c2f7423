# training.training_points: each training point's out-of-subset value and the relabel list at
# estimation.fdr, calibrated on the query points (held-out points with their true classes).
rule mislabels:
    input:
        training_points=out(LEVEL, "training_points.npz"),
        masks=out(LEVEL, "masks.npz"),
    output:
        table=out(LEVEL, "mislabels.csv"),
        summary=out(LEVEL, "mislabels.json"),
    params:
        ame=AME,
        config=PARAMS,
    log:
        log_path("mislabels.log"),
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} mislabels --params {params.config} "
        "--training-points {input.training_points} --masks {input.masks} "
        "--out {output.table} --summary {output.summary} > {log} 2>&1"
