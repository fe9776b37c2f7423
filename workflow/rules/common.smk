# Configuration check and the layout of the run, derived once from params.yaml.
import math
import sys

from ame import behaviours as ame_behaviours
from ame import data as ame_data
from ame import params as ame_params
from ame.params import INDEX_DIGITS

# The `ame` verbs read the same params file the workflow was started with; settings passed with
# --config would silently differ between the two, so they are refused.
PARAMS = (workflow.overwrite_configfiles or ["params.yaml"])[-1]
try:
    ame_params.validate(config)
    if config != ame_params.load(PARAMS):
        raise ame_params.ParamsError(
            "settings given with --config are not seen by the jobs; edit the params file "
            "(or use dvc exp run --set-param) instead"
        )
    N_POINTS = ame_data.n_training_points(config)
    ame_behaviours.check_n_queries(config["behaviour"]["n_queries"],
                                   ame_behaviours.n_query_points(config))
except ValueError as err:
    sys.exit(f"ame: error in {PARAMS}: {err}")

# Jobs run the package with the interpreter that runs Snakemake (the project's environment).
AME = f"{sys.executable} -m ame"
DATASET = "data/prepared/dataset.npz"
MASKS = "results/masks.npz"
BEHAVIOURS = "results/behaviours.npz"
ESTIMATES = "results/estimates.npz"
KEY = ame_params.run_key(config)
SUBMODEL_DIR = f"results/submodels/{KEY}"
N_SUBSETS = ame_params.n_subsets(config, N_POINTS)
PER_JOB = config["training"]["subsets_per_job"]
MEMBER_DIGITS = round(math.log10(PER_JOB))
PACK_DIGITS = INDEX_DIGITS - MEMBER_DIGITS
N_JOBS = math.ceil(N_SUBSETS / PER_JOB)

wildcard_constraints:
    pack=rf"\d{{{PACK_DIGITS}}}",


def pack_pattern():
    """Output patterns of the train rule: a subset index is its pack's digits then its member's."""
    members = [f"{i:0{MEMBER_DIGITS}d}" if MEMBER_DIGITS else "" for i in range(PER_JOB)]
    suffixes = [".npz"] + ([".safetensors"] if config["training"]["save_weights"] else [])
    return [f"{SUBMODEL_DIR}/subset_{{pack}}{m}{s}" for m in members for s in suffixes]


def all_submodels():
    return expand(pack_pattern(), pack=[f"{j:0{PACK_DIGITS}d}" for j in range(N_JOBS)])


def final_outputs():
    return [
        "results/scores.csv",
        "results/metrics.json",
        "results/report.md",
    ]
