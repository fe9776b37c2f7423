rule prepare:
    output:
        dataset=DATASET,
    params:
        ame=AME,
        config=PARAMS,
        dataset=config["dataset"],
    log:
        "logs/prepare.log",
    resources:
        mem_mb=4000,
        runtime=30,
    conda:
        ENV
    shell:
        "{params.ame} prepare --params {params.config} --out {output.dataset} > {log} 2>&1"
