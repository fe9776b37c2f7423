# One job trains `training.subsets_per_job` consecutive subsets (a pack); each subset keeps its
# own file in the submodel store. Inputs are ancient(): a budget change rewrites the mask
# artifact (new rows appended, old rows bit-identical) and must not retrain finished subsets.
# What a submodel depends on is in the directory name ({run}: the run key and the units map)
# and in the fingerprint inside each file, which `ame gather` checks. One rule for every store
# ({experiment}: the main subsets, the validation subsets, the removal arms; validate.smk).
rule train:
    input:
        dataset=ancient(DATASET),
        masks=ancient(out(LEVEL, "{experiment}masks.npz")),
    output:
        STORE.pack_pattern(out(LEVEL, "{experiment}submodels/{run}")),
    params:
        ame=AME,
        config=PARAMS,
        first=lambda wildcards: int(wildcards.pack) * STORE.per_job,
        n_subsets=STORE.per_job,
        out_dir=lambda wildcards: out(
            level_of(wildcards), f"{wildcards.experiment}submodels/{wildcards.run}"
        ),
    log:
        log_path("{experiment}train/{run}/pack_{pack}.log"),
    benchmark:
        log_path("{experiment}train/{run}/pack_{pack}.benchmark.tsv")
    threads: 1
    resources:
        gpu=TRAIN_GPUS,
        mem_mb=8000,
        runtime=60,
    group:
        "train"
    conda:
        ENV
    shell:
        "{params.ame} --verbose train --params {params.config} --dataset {input.dataset} "
        "--masks {input.masks} --out-dir {params.out_dir} --first {params.first} "
        "--count {params.n_subsets} --threads {threads} > {log} 2>&1"


# Target for "every submodel of the current budget" of a flat run (the DVC train stage asks
# for it; the stages of a hierarchical study ask for each level's estimates instead).
rule submodels:
    input:
        submodel_files,
