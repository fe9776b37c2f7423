# Configuration check and the layout of the run, derived once from params.yaml.
import math
import sys

from ame import behaviours as ame_behaviours
from ame import data as ame_data
from ame import params as ame_params
from ame.params import INDEX_DIGITS
from ame.sampling import MaskSet

# The `ame` verbs read the same params file the workflow was started with; settings passed with
# --config would silently differ between the two, so they are refused.
PARAMS = (workflow.overwrite_configfiles or ["params.yaml"])[-1]
HIERARCHICAL = config["hierarchy"]["enabled"]
try:
    ame_params.validate(config)
    if config != ame_params.load(PARAMS):
        raise ame_params.ParamsError(
            "settings given with --config are not seen by the jobs; edit the params file "
            "(or use dvc exp run --set-param) instead"
        )
    N_POINTS = ame_data.n_training_points(config)
    N_SOURCES = ame_data.n_sources(config)
    ame_behaviours.check_n_queries(config["behaviour"]["n_queries"],
                                   ame_behaviours.n_query_points(config))
    if HIERARCHICAL and N_SOURCES < 2:
        raise ame_params.ParamsError(
            f"hierarchy.enabled: {config['dataset']['path']} has no `source` array "
            "with at least 2 sources"
        )
except ValueError as err:
    sys.exit(f"ame: error in {PARAMS}: {err}")

# Jobs run the package with the interpreter that runs Snakemake (the project's environment).
AME = f"{sys.executable} -m ame"
DATASET = "data/prepared/dataset.npz"
KEY = ame_params.run_key(config)
PER_JOB = config["training"]["subsets_per_job"]
MEMBER_DIGITS = round(math.log10(PER_JOB))
PACK_DIGITS = INDEX_DIGITS - MEMBER_DIGITS
# The experiments of the study (ame.hierarchy); a flat run has one, at the top of results/.
LEVELS = (
    ["sources", "points"] + (["flat"] if config["hierarchy"]["compare_flat"] else [])
    if HIERARCHICAL
    else ["points"]
)
# In a hierarchy one set of rules serves every level through the {level} wildcard.
LEVEL = "{level}" if HIERARCHICAL else "points"

wildcard_constraints:
    pack=rf"\d{{{PACK_DIGITS}}}",
    run=r"[0-9a-f]{12}(-[0-9a-f]{8})?",
    level="sources|points|flat",


def out(level, name):
    """Path of a level's artifact: results/<name>, or results/<level>/<name> in a hierarchy."""
    return f"results/{level}/{name}" if HIERARCHICAL else f"results/{name}"


def log_path(name):
    return f"logs/{LEVEL}/{name}" if HIERARCHICAL else f"logs/{name}"


def level_of(wildcards):
    return wildcards.level if HIERARCHICAL else "points"


def pack_pattern():
    """Output patterns of the train rule: a subset index is its pack's digits then its member's."""
    members = [f"{i:0{MEMBER_DIGITS}d}" if MEMBER_DIGITS else "" for i in range(PER_JOB)]
    suffixes = [".npz"] + ([".safetensors"] if config["training"]["save_weights"] else [])
    return [out(LEVEL, f"submodels/{{run}}/subset_{{pack}}{m}{s}") for m in members for s in suffixes]


# Budgets known when the workflow starts; the point level of a hierarchy is only known once the
# source level has been estimated, so its layout is read from its sample checkpoint.
BUDGETS = {
    "points": ame_params.n_subsets(config, N_POINTS),
    "flat": ame_params.flat_budget(config, N_POINTS),
    "sources": ame_params.source_budget(config, N_SOURCES) if HIERARCHICAL else None,
}


def layout(level):
    """(subsets trained, submodel directory name) of a level."""
    if HIERARCHICAL and level == "points":
        masks = MaskSet.load(checkpoints.sample.get(level=level).output.masks)
        # a new source selection means new submodels, not stale files
        return masks.n_subsets, f"{KEY}-{masks.units_digest()[:8]}"
    return ame_params.whole_jobs(config, BUDGETS[level]), KEY


def submodel_dir(wildcards):
    level = level_of(wildcards)
    return out(level, f"submodels/{layout(level)[1]}")


def submodel_files(wildcards):
    level = level_of(wildcards)
    n_subsets, run = layout(level)
    return expand(
        pack_pattern(),
        level=level,
        run=run,
        pack=[f"{j:0{PACK_DIGITS}d}" for j in range(math.ceil(n_subsets / PER_JOB))],
    )


def selection(wildcards):
    """The point level of a hierarchy samples inside the sources selected upstream."""
    return [out("sources", "estimates.npz")] if level_of(wildcards) == "points" and HIERARCHICAL else []


def final_outputs():
    return [out(level, name) for level in LEVELS for name in ("scores.csv", "metrics.json")] + [
        "results/report.md"
    ]
