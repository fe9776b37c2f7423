"""The run plan: the one home of budgets, rows to train and streams."""

import copy

import numpy as np
import pytest
from conftest import REPO

from ame.pipeline import params
from ame.pipeline.plan import experiment, levels
from ame.sampling import STREAMS


@pytest.fixture(scope="module")
def config():
    return params.load(REPO / "params.yaml")


@pytest.fixture(scope="module")
def study():
    return params.load(REPO / "studies/hierarchical/params.yaml")


def test_flat_run_budget_is_the_papers_rule_rounded_to_whole_jobs(config):
    rule = copy.deepcopy(config)
    rule["sampling"].update(n_subsets=None, k=30)
    plan = experiment(rule, "points", "main", 1437)
    assert plan.budget == 1259  # round(4 * 30 * log2 1437)
    assert plan.n_train == 1300 and plan.stream == STREAMS["points"] and plan.unit == "point"
    assert levels(config) == ["points"] and not plan.restricted
    fixed = copy.deepcopy(config)
    fixed["sampling"]["n_subsets"] = 40
    fixed["training"]["subsets_per_job"] = 1
    assert experiment(fixed, "points", "main", 1437).n_train == 40


def test_hierarchy_levels_have_their_own_budgets_and_streams(study):
    assert levels(study) == ["sources", "points", "flat"]
    sources, points, flat = (
        experiment(study, lv, "main", n)
        for lv, n in zip(levels(study), (100, 260, 1437), strict=True)
    )
    assert (sources.budget, points.budget, flat.budget) == (500, 400, 2400)
    assert sources.unit == "source" and points.restricted and not flat.restricted
    # the flat comparison is the plain run of the same settings: the plain run's stream
    assert flat.stream == STREAMS["points"]
    assert sources.stream != points.stream != flat.stream
    rule = copy.deepcopy(study)
    rule["hierarchy"]["source_subsets"] = None
    assert experiment(rule, "sources", "main", 100).budget == round(
        4 * 20 * 6.643856
    )  # k_sources 20


def test_streams_are_distinct():
    assert len(set(STREAMS.values())) == len(STREAMS)


def test_unknown_level_and_a_level_the_study_does_not_run_are_refused(config):
    with pytest.raises(ValueError, match="level: 'pts' is no experiment of this study"):
        experiment(config, "pts", "main", 10)
    with pytest.raises(ValueError, match="level: 'screen' is no experiment"):
        experiment(config, "screen", "main", 10)


def test_each_kind_of_experiment_has_its_files_store_stream_and_dependencies(study):
    from ame.pipeline.plan import KINDS, experiment, kinds
    from ame.sampling import MaskSet

    main, held_out, removal = (experiment(study, "points", kind, 260) for kind in KINDS)
    assert [e.file("masks.npz") for e in (main, held_out, removal)] == [
        "masks.npz",
        "validation_masks.npz",
        "removal_masks.npz",
    ]
    # the restricted level and its validation subsets follow the source selection; the removal
    # arms follow their level's estimates, and only their artifact knows how many rows they have
    assert main.reads == held_out.reads == (("sources", "estimates.npz"),)
    assert removal.reads == (("points", "estimates.npz"),)
    assert removal.budget is None and removal.stream == STREAMS["removal"]
    assert len({main.stream, held_out.stream, removal.stream}) == 3
    masks = MaskSet.draw(
        40, 4, _design(study), 0, units=np.repeat(np.arange(10), 4), ids=np.arange(10)
    )
    assert main.store("k", masks) == held_out.store("k", masks).removeprefix("validation_")
    assert main.store("k", masks) == f"submodels/k-{masks.units_digest()[:8]}"
    assert removal.store("k", masks) == f"removal_submodels/k-{masks.rows_digest()[:8]}"
    assert experiment(study, "flat", "main", 1437).store("k") == "submodels/k"
    assert kinds(study, "flat") == ["main"] and kinds(study, "points") == list(KINDS)
    off = copy.deepcopy(study)
    off["validation"]["enabled"] = False
    assert kinds(off, "points") == ["main"]


def _design(config):
    from ame.pipeline.plan import design

    return design(config)


def test_the_seed_rule_is_the_plans(config):
    from ame.pipeline.plan import replicate_seed, training_seed
    from ame.sampling import MaskSet

    masks = MaskSet.draw(20, 3, _design(config), seed=0)
    per_subset = copy.deepcopy(config)
    per_subset["training"]["seed_policy"] = "per_subset"
    seed = config["training"]["seed"]
    assert training_seed(per_subset, masks, 2) == seed + 2
    common = copy.deepcopy(config)
    common["training"]["seed_policy"] = "common"
    assert training_seed(common, masks, 2) == seed
    assert replicate_seed(config, 3) == seed + 3
