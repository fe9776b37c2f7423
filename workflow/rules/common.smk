# Configuration check and the layout of the run, asked of the `ame` package once at start-up:
# the run plan (ame.pipeline.plan) decides budgets, the submodel store (ame.pipeline.submodels)
# the file layout. Nothing here computes either.
import sys

import yaml

from ame import scenarios
from ame.behaviour.kinds import check_n_queries
from ame.errors import UserError
from ame.pipeline import params as ame_params
from ame.pipeline import plan as ame_plan
from ame.pipeline.provenance import run_key
from ame.pipeline.submodels import SubmodelStore
from ame.sampling import MaskSet

# The `ame` verbs read the same params file the workflow was started with; settings passed with
# --config would silently differ between the two, so they are refused. A study's params file may
# extend a base (ame.pipeline.params): the workflow runs on the merged, validated whole.
PARAMS = (workflow.overwrite_configfiles or ["params.yaml"])[-1]
try:
    with open(PARAMS) as fh:
        written = yaml.safe_load(fh)
    if config != written:
        raise ame_params.ParamsError(
            "settings given with --config are not seen by the jobs; edit the params file "
            "(or use dvc exp run --set-param) instead"
        )
    config.clear()
    config.update(ame_params.load(PARAMS))
    DESCRIPTION = scenarios.describe(config)
    check_n_queries(config["behaviour"]["n_queries"], DESCRIPTION["n_query_points"])
    if config["behaviour"]["kind"] != "raw" and not DESCRIPTION["has_classes"]:
        raise ame_params.ParamsError(
            f"behaviour.kind: {config['behaviour']['kind']} needs one class per query, which "
            f"the plug-in's describe() does not give (classes); use kind: raw"
        )
    if config["hierarchy"]["enabled"] and DESCRIPTION["n_sources"] < 2:
        raise ame_params.ParamsError(
            f"hierarchy.enabled: {config['dataset']['path']} has no `source` array "
            "with at least 2 sources"
        )
except (UserError, OSError) as err:
    sys.exit(f"ame: error in {PARAMS}: {err}")

# Jobs run the package with the interpreter that runs Snakemake (the project's environment).
AME = f"{sys.executable} -m ame"
ENV = "../envs/ame.yaml"
DATASET = "data/prepared/dataset.npz"
KEY = run_key(config)
HIERARCHICAL = config["hierarchy"]["enabled"]
LEVELS = ame_plan.levels(config)
STORE = SubmodelStore(
    "", config["training"]["subsets_per_job"], config["training"]["save_weights"]
)
# In a hierarchy one set of rules serves every level through the {level} wildcard.
LEVEL = "{level}" if HIERARCHICAL else "points"
# A training job asks for a GPU unless the params say CPU (README, "Running on SLURM").
TRAIN_GPUS = 0 if config["training"]["device"] == "cpu" else 1


wildcard_constraints:
    pack=rf"\d{{{STORE.pack_digits}}}",
    run=r"[0-9a-f]{12}(-[0-9a-f]{8})?",
    level="sources|points|flat",
    # the submodels of an experiment's main subsets (""), its held-out validation subsets, or its
    # counterfactual removal arms: three stores trained by the one train rule
    experiment="(|validation_|removal_)",


def out(level, name):
    """Path of a level's artifact: results/<name>, or results/<level>/<name> in a hierarchy."""
    return f"results/{level}/{name}" if HIERARCHICAL else f"results/{name}"


def log_path(name):
    return f"logs/{LEVEL}/{name}" if HIERARCHICAL else f"logs/{name}"


def level_of(wildcards):
    return wildcards.level if HIERARCHICAL else "points"


def layout(level, experiment=""):
    """(subsets trained, submodel directory name) of a level, from the run plan; the restricted
    point level of a hierarchy is only known once its sample checkpoint has run. The validation
    subsets are named like the level's own (same units, another store); the removal arms by a
    hash of their masks and seeds, since they follow the estimates."""
    if experiment == "validation_":
        masks = MaskSet.load(checkpoints.sample_validation.get(level=level).output.masks)
        return masks.n_subsets, layout(level)[1]
    if experiment == "removal_":
        masks = MaskSet.load(checkpoints.removal.get(level=level).output.masks)
        return masks.n_subsets, f"{KEY}-{masks.rows_digest()[:8]}"
    if HIERARCHICAL and level == "points":
        masks = MaskSet.load(checkpoints.sample.get(level=level).output.masks)
        # a new source selection means new submodels, not stale files
        return masks.n_subsets, f"{KEY}-{masks.units_digest()[:8]}"
    n_units = DESCRIPTION["n_sources"] if level == "sources" else DESCRIPTION["n_points"]
    return ame_plan.level_plan(config, level, n_units).n_train, KEY


def experiment_of(wildcards):
    return getattr(wildcards, "experiment", "")


def submodel_dir(wildcards):
    level, experiment = level_of(wildcards), experiment_of(wildcards)
    return out(level, f"{experiment}submodels/{layout(level, experiment)[1]}")


def submodel_files(wildcards):
    level, experiment = level_of(wildcards), experiment_of(wildcards)
    n_subsets, run = layout(level, experiment)
    directory = out(level, f"{experiment}submodels/{run}")
    return [str(path) for path in SubmodelStore(directory, STORE.per_job, STORE.save_weights)
            .files(n_subsets)]


def selection(wildcards):
    """The point level of a hierarchy samples inside the sources selected upstream."""
    return [out("sources", "estimates.npz")] if level_of(wildcards) == "points" and HIERARCHICAL else []


# The held-out checks run for every experiment but the flat comparison of a hierarchy.
VALIDATED_LEVELS = [level for level in LEVELS if level != "flat"]
VALIDATE = config["validation"]["enabled"]


def validation_files(level):
    """What the report reads of the validate step: nothing when it is switched off."""
    names = ("validation.json", "validation_per_query.csv", "lds_curve.csv")
    return [out(level, name) for name in names + ("validation_predictions.csv",)] if VALIDATE else []


def final_outputs():
    return (
        [out(level, name) for level in LEVELS for name in ("scores.csv", "metrics.json")]
        + [out(level, "validation.json") for level in VALIDATED_LEVELS if VALIDATE]
        + ["results/report.md"]
    )
