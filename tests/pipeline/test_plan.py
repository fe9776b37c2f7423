"""The run plan: the one home of budgets, rows to train and streams."""

import copy

import pytest
from conftest import REPO

from ame.pipeline import params
from ame.pipeline.plan import LEVELS, level_plan, levels
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
    plan = level_plan(rule, "points", 1437)
    assert plan.budget == 1259  # round(4 * 30 * log2 1437)
    assert plan.n_train == 1300 and plan.stream == STREAMS["points"] and plan.unit == "point"
    assert levels(config) == ["points"] and not plan.restricted
    fixed = copy.deepcopy(config)
    fixed["sampling"]["n_subsets"] = 40
    fixed["training"]["subsets_per_job"] = 1
    assert level_plan(fixed, "points", 1437).n_train == 40


def test_hierarchy_levels_have_their_own_budgets_and_streams(study):
    assert levels(study) == ["sources", "points", "flat"]
    sources, points, flat = (
        level_plan(study, lv, n) for lv, n in zip(LEVELS, (100, 260, 1437), strict=True)
    )
    assert (sources.budget, points.budget, flat.budget) == (500, 400, 2400)
    assert sources.unit == "source" and points.restricted and not flat.restricted
    # the flat comparison is the plain run of the same settings: the plain run's stream
    assert flat.stream == STREAMS["points"]
    assert sources.stream != points.stream != flat.stream
    rule = copy.deepcopy(study)
    rule["hierarchy"]["source_subsets"] = None
    assert level_plan(rule, "sources", 100).budget == round(4 * 20 * 6.643856)  # k_sources 20


def test_streams_are_distinct():
    assert len(set(STREAMS.values())) == len(STREAMS)


def test_unknown_level_is_refused(config):
    with pytest.raises(ValueError, match="level: unknown experiment 'pts'"):
        level_plan(config, "pts", 10)
