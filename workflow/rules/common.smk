# Configuration check and the layout of the run, asked of the `ame` package once at start-up:
# the run plan (ame.pipeline.plan) decides each experiment's budget, store and files, the
# submodel store (ame.pipeline.submodels) the files inside a store. Nothing here computes either.
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
    several = [name for name in ("hierarchy", "stages") if config[name]["enabled"]]
    if config["training"]["training_points"] and several:
        raise ame_params.ParamsError(
            "training.training_points: the relabel list is a flat study's; set "
            f"{several[0]}.enabled: false"
        )
    if config["training"]["training_points"] and not DESCRIPTION.get("training_outputs"):
        raise ame_params.ParamsError(
            f"training.training_points: the {config['dataset']['name']} scenario gives no "
            "outputs on training points; a plug-in whose describe() says training_outputs "
            "does (docs/how-to/mislabels.md)"
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
STAGED = config["stages"]["enabled"]
# A hierarchy or a two-stage design runs several experiments, each in results/<level>/.
MULTILEVEL = HIERARCHICAL or STAGED
TRAINING_POINTS = config["training"]["training_points"]
LEVELS = ame_plan.levels(config)
STORE = SubmodelStore(
    "", config["training"]["subsets_per_job"], config["training"]["save_weights"]
)
# With several levels one set of rules serves every level through the {level} wildcard.
LEVEL = "{level}" if MULTILEVEL else "points"
# A training job asks for a GPU unless the params say CPU (docs/tutorials/slurm.md).
TRAIN_GPUS = 0 if config["training"]["device"] == "cpu" else 1


wildcard_constraints:
    pack=rf"\d{{{STORE.pack_digits}}}",
    run=r"[0-9a-f]{12}(-[0-9a-f]{8})?",
    level="|".join(ame_plan.LEVELS),
    # the submodels of a level's main subsets (""), its held-out validation subsets, or its
    # counterfactual removal arms: three stores trained by the one train rule (run plan's prefixes)
    experiment="(" + "|".join(ame_plan.PREFIXES.values()) + ")",


def out(level, name):
    """Path of a level's artifact: results/<name>, or results/<level>/<name> with several."""
    return f"results/{level}/{name}" if MULTILEVEL else f"results/{name}"


def log_path(name):
    return f"logs/{LEVEL}/{name}" if MULTILEVEL else f"logs/{name}"


def level_of(wildcards):
    return wildcards.level if MULTILEVEL else "points"


# the checkpoint whose masks say how many rows an experiment trains, where they follow an
# artifact (the run plan's Experiment.reads) or, for the validation subsets, a level's budget
MASK_CHECKPOINTS = {"validation": "sample_validation", "removal": "removal", "main": "sample"}


def layout(level, kind="main"):
    """(subsets trained, submodel directory within the level's results) of an experiment, from
    the run plan; where its masks are needed to know them, read from its sample checkpoint."""
    n_units = DESCRIPTION["n_sources"] if level == "sources" else DESCRIPTION["n_points"]
    plan = ame_plan.experiment(config, level, kind, n_units)
    if plan.reads or kind == "validation":
        sampled = getattr(checkpoints, MASK_CHECKPOINTS[kind])
        masks = MaskSet.load(sampled.get(level=level).output.masks)
        return masks.n_subsets, plan.store(KEY, masks)
    return plan.n_train, plan.store(KEY)


KIND_OF_PREFIX = {prefix: kind for kind, prefix in ame_plan.PREFIXES.items()}


def kind_of(wildcards):
    """The experiment of a job: its {experiment} wildcard is the run plan's file prefix."""
    return KIND_OF_PREFIX[getattr(wildcards, "experiment", "")]


def submodel_dir(wildcards):
    level = level_of(wildcards)
    return out(level, layout(level, kind_of(wildcards))[1])


def submodel_files(wildcards):
    level = level_of(wildcards)
    n_subsets, store = layout(level, kind_of(wildcards))
    directory = out(level, store)
    return [str(path) for path in SubmodelStore(directory, STORE.per_job, STORE.save_weights)
            .files(n_subsets)]


# The level whose estimates the point level's subsets follow: a hierarchy's point level samples
# inside the sources selected there, a two-stage design's second stage varies the screen's
# candidates.
FOLLOWED = "sources" if HIERARCHICAL else "screen" if STAGED else None


def stage_settings(wildcards):
    """What of ``stages`` a level's subsets depend on (a change reruns its sample step): the
    screen's share of the budget for the screen, every setting for the second stage."""
    if not STAGED:
        return None
    stages = config["stages"]
    return stages if level_of(wildcards) == "points" else {"screen_share": stages["screen_share"]}


def selection(wildcards):
    """The estimates a level's sample step reads (``--selection``): none but the point level's."""
    return [out(FOLLOWED, "estimates.npz")] if level_of(wildcards) == "points" and FOLLOWED else []


# The levels the validate step checks (the run plan: every one but a hierarchy's flat
# comparison, when validation is on), and the files it writes for each, by the report's option.
VALIDATED_LEVELS = [level for level in LEVELS if "validation" in ame_plan.kinds(config, level)]


def validation_files(level):
    """What the report reads of the validate step, by its option: nothing when it does not run."""
    if level not in VALIDATED_LEVELS:
        return {}
    return {flag: out(level, name) for flag, name in ame_plan.VALIDATION_FILES.items()}


def final_outputs():
    return (
        [out(level, name) for level in LEVELS for name in ("scores.csv", "metrics.json")]
        + [validation_files(level)["validation"] for level in VALIDATED_LEVELS]
        + ["results/report.md"]
    )
