"""Two-stage designs through the workflow and DVC: the screen and the second stage as levels of
one DAG, the candidates read from the screen's artifact by the rule fixed in advance, fresh
subsets on the second stage's own streams, and the estimand of each variant in every output."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import (
    file_state,
    jobs_run,
    make_workspace,
    run,
    snakemake,
    study_workspace,
    write_params,
)
from quality import check_run

from ame.data import Dataset
from ame.estimation.results import ESTIMANDS, Estimates
from ame.pipeline import params, plan
from ame.sampling import STREAMS, MaskSet

pytestmark = pytest.mark.slow

# 15 poisons, 100 steps and 120 subsets: the screen (60) ranks some poisons among its 5% of
# candidates, so the second stage has effects to estimate
STAGED = {
    "sampling": {"n_subsets": 120},
    "training": {"steps": 100, "subsets_per_job": 10},
    "stages": {"enabled": True, "candidates": 0.05},
    "validation": {"enabled": True},
}


def test_the_second_stage_estimates_the_screens_candidates_on_fresh_subsets(tmp_path):
    workspace = make_workspace(tmp_path / "ws", STAGED)
    first = snakemake(workspace)
    log = first.stdout + first.stderr
    assert jobs_run(log, "sample") == 2 and jobs_run(log, "estimate") == 2
    config = params.load(workspace / "params.yaml")
    dataset = Dataset.load(workspace / "data/prepared/dataset.npz")
    results = workspace / "results"

    # the screen is the plain run's first half of the subsets, over every point
    plain = params.merge(config, {"stages": {"enabled": False}})
    screen_masks = MaskSet.load(results / "screen/masks.npz")
    assert screen_masks.budget == 60 and screen_masks.columns is None
    np.testing.assert_array_equal(
        screen_masks.packed, plan.draw_masks(plain, dataset, "points").packed[:60]
    )
    # the candidates: the rule applied to the screen's artifact, nothing else
    screen = Estimates.load(results / "screen/estimates.npz")
    chosen = plan.candidates(config, screen)
    assert len(chosen) == int(np.ceil(0.05 * dataset.n_points))
    masks = MaskSet.load(results / "points/masks.npz")
    held_out = MaskSet.load(results / "points/validation_masks.npz")
    assert (masks.stream, held_out.stream) == (
        STREAMS["candidates"],
        STREAMS["validation_candidates"],
    )
    assert masks.budget == 60 and masks.units is None  # the other points are sampled too
    np.testing.assert_array_equal(masks.column_ids, chosen)
    np.testing.assert_array_equal(held_out.column_ids, chosen)
    estimates = Estimates.load(results / "points/estimates.npz")
    np.testing.assert_array_equal(estimates.ids, chosen)
    assert estimates.estimand == "design" and estimates.ame.shape[1] == len(chosen)
    check_run(results / "points/estimates.npz", workspace / "data/prepared/dataset.npz")
    metrics = json.loads((results / "points/metrics.json").read_text())
    assert metrics["estimand"] == "design" and metrics["n_submodels"] == 60
    assert metrics["n_units_studied"] == len(chosen)
    validation = json.loads((results / "points/validation.json").read_text())
    assert validation["n_validation_submodels"] == config["validation"]["n_subsets"]
    report = (results / "report.md").read_text()
    assert "## Two-stage study: a screen, then the candidates" in report
    assert f"kept {len(chosen)} candidates" in report and "the AME keeps its meaning" in report
    assert "Nothing to be done" in snakemake(workspace, "-n").stdout

    # the other points in every subset: the second stage's rows now follow the candidates (a
    # store of their own), the screen and its submodels stay as they are
    before = file_state(workspace, "results/screen")
    write_params(workspace, {"stages": {"others": "in"}})
    snakemake(workspace)
    assert file_state(workspace, "results/screen") == before
    masks = MaskSet.load(results / "points/masks.npz")
    np.testing.assert_array_equal(masks.ids, chosen)
    assert all(masks.point_mask(i)[masks.units < 0].all() for i in range(masks.n_subsets))
    inside = Estimates.load(results / "points/estimates.npz")
    assert inside.estimand == "others_in"
    assert json.loads((results / "points/metrics.json").read_text())["estimand"] == "others_in"
    assert ESTIMANDS["others_in"] in (results / "report.md").read_text()


def test_the_two_stage_study_runs_through_dvc_and_an_experiment_switches_the_others(tmp_path):
    shipped_stages = {"enabled": True, "screen_share": 0.5, "candidates": 0.1, "others": "sampled"}
    tiny = {**STAGED, "stages": shipped_stages, "behaviour": {"n_queries": 2}}
    tiny["estimation"] = {"n_folds": 3, "n_bootstrap": 0, "n_lambdas": 20}
    tiny["validation"] = {"enabled": True, "n_subsets": 20, "removal_queries": 1, "replicates": 1}
    study, shipped = study_workspace(tmp_path / "ws", "two-stage", tiny)
    assert shipped["stages"] == shipped_stages

    first = run(["dvc", "repro"], study)
    for stage in ("prepare", "screen", "points", "validate", "evaluate", "report"):
        assert f"Running stage '{stage}'" in first.stdout, stage
    assert "## Two-stage study" in (study / "results/report.md").read_text()
    assert "Stage 'report' didn't change" in run(["dvc", "repro"], study).stdout

    switched = run(["dvc", "exp", "run", "-S", "stages.others=in"], study)
    log = switched.stdout + switched.stderr
    assert jobs_run(log, "train") >= 1  # the second stage's new rows
    metrics = json.loads((study / "results/points/metrics.json").read_text())
    assert metrics["estimand"] == "others_in"
    screen_runs = list((study / "results/screen/submodels").iterdir())
    assert len(screen_runs) == 1  # the screen was not retrained
