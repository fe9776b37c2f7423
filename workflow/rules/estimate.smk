# The AME estimate, its selections, and the same estimate refitted on budget prefixes.
rule estimate:
    input:
        behaviours=out(LEVEL, "behaviours.npz"),
        masks=out(LEVEL, "masks.npz"),
    output:
        estimates=out(LEVEL, "estimates.npz"),
        scores=out(LEVEL, "scores.csv"),
        prefixes=out(LEVEL, "prefix_estimates.npz"),
    params:
        ame=AME,
        config=PARAMS,
        estimation=config["estimation"],
    log:
        log_path("estimate.log"),
    threads: workflow.cores
    resources:
        mem_mb=16000,
        runtime=120,
    conda:
        ENV
    shell:
        "{params.ame} estimate --params {params.config} --behaviours {input.behaviours} "
        "--masks {input.masks} --out {output.estimates} --scores {output.scores} "
        "--prefixes {output.prefixes} --threads {threads} > {log} 2>&1"
