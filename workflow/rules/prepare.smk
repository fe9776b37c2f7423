rule prepare:
    output:
        dataset=DATASET,
    params:
        config=PARAMS,
        dataset=config["dataset"],
    log:
        "logs/prepare.log",
    shell:
        "{AME} prepare --params {params.config} --out {output.dataset} > {log} 2>&1"
