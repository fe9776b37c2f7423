# One job trains `training.subsets_per_job` consecutive subsets; each subset keeps its own file.
# Inputs are ancient(): a budget change rewrites the mask artifact (new rows appended, old rows
# bit-identical) and must not retrain finished subsets. What a submodel depends on is in KEY, the
# directory name, and in the fingerprint inside each file, which `ame gather` checks.
rule train:
    input:
        dataset=ancient(DATASET),
        masks=ancient(MASKS),
    output:
        pack_pattern(),
    params:
        config=PARAMS,
        first=lambda wildcards: int(wildcards.pack) * PER_JOB,
        n_subsets=PER_JOB,
        out_dir=SUBMODEL_DIR,
    log:
        f"logs/train/{KEY}/pack_{{pack}}.log",
    benchmark:
        f"logs/train/{KEY}/pack_{{pack}}.benchmark.tsv"
    threads: 1
    group:
        "train"
    shell:
        "{AME} --verbose train --params {params.config} --dataset {input.dataset} "
        "--masks {input.masks} --out-dir {params.out_dir} --first {params.first} "
        "--count {params.n_subsets} --threads {threads} > {log} 2>&1"


# Target for "every submodel of the current budget" (the DVC train stage asks for it).
rule submodels:
    input:
        all_submodels(),
