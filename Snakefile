# AME pipeline: prepare -> sample -> train (one job per pack of subsets) -> gather -> estimate
# -> evaluate -> report. Every rule calls the `ame` package; nothing scientific lives here.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/prepare.smk"
include: "workflow/rules/sample.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/gather.smk"
include: "workflow/rules/estimate.smk"
include: "workflow/rules/mislabels.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/validate.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
