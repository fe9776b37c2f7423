"""The validate step in the real workflow, on a user dataset without ground truth: the report
leads with the held-out LDS and the removal effects, and the validation submodels never enter
the estimate."""

import json

import numpy as np
import pytest
from conftest import make_workspace, snakemake
from quality import assert_finds_the_planted_units

from ame.artifacts import load_npz
from ame.behaviour.gather import Behaviours
from ame.data.digits import digits_backdoor
from ame.estimation.results import Estimates
from ame.evaluation.lds import lds_interval
from ame.sampling import MaskSet

VALIDATION = {  # enough submodels for the LASSO to find effects: an LDS to report
    "sampling": {"n_subsets": 200},
    "training": {"steps": 100, "subsets_per_job": 100},
    "estimation": {"lambda_rule": "min", "n_folds": 5},
    "validation": {"enabled": True, "n_subsets": 60, "removal_queries": 1, "replicates": 2},
}


@pytest.mark.slow
def test_user_data_without_ground_truth_leads_with_the_evidence(tmp_path):
    scenario = digits_backdoor()
    path = tmp_path / "user.npz"
    np.savez(  # the digits backdoor, but no ground_truth: nothing says which points are poisons
        path,
        X_train=scenario.X_train,
        y_train=scenario.y_train,
        X_query=scenario.X_query,
        y_query=scenario.y_query,
    )
    workspace = make_workspace(
        tmp_path / "ws", {**VALIDATION, "dataset": {"name": "npz", "path": str(path)}}
    )
    snakemake(workspace)
    summary = json.loads((workspace / "results/validation.json").read_text())
    assert summary["n_validation_submodels"] == 60 and summary["lds_within"] == "p value"
    # the bar without ground truth: the interval excludes 0, where a shuffled estimate lies
    assert 0 < summary["lds_ci_low"] <= summary["lds_mean"] <= summary["lds_ci_high"]
    estimates = Estimates.load(workspace / "results/estimates.npz")
    held_out = MaskSet.load(workspace / "results/validation_masks.npz")
    behaviours = Behaviours.load(workspace / "results/validation_behaviours.npz")
    shuffled = np.random.default_rng(0).permutation(estimates.ame, axis=1)
    low, _ = lds_interval(
        shuffled, held_out.masks[behaviours.subsets], behaviours.p, behaviours.Y, held_out.design
    )
    assert not low > 0
    # and the truth the file withheld, used here only to score: the effects rank the poisons
    assert_finds_the_planted_units(estimates, scenario.ground_truth)
    assert summary["n_removal_queries"] == 2 and summary["removal_query"] == "aggregate"
    assert summary["removal_effect_mean"] is not None
    metrics = json.loads((workspace / "results/metrics.json").read_text())
    assert metrics["precision"] is None
    report = (workspace / "results/report.md").read_text()
    sections = [line for line in report.splitlines() if line.startswith("## ")]
    assert sections[0] == "## Can I trust these attributions?"
    assert "The dataset has no ground truth" in report and "**Counterfactual retraining**" in report
    assert "| precision" not in report  # absent, not zero
    for plot in ("lds_curve.png", "lds_scatter.png", "removal_arms.png"):
        assert (workspace / "results/plots" / plot).stat().st_size > 1000

    # the removal arms were trained on exactly the planned sets, with the planned seeds
    plan = json.loads((workspace / "results/removal_plan.json").read_text())
    arms = MaskSet.load(workspace / "results/removal_masks.npz")
    (store,) = (workspace / "results/removal_submodels").iterdir()
    aggregate = plan["queries"][-1]
    row = aggregate["rows_removed"][1]
    record = json.loads(str(load_npz(store / f"subset_{row:06d}.npz")["fingerprint"]))
    assert record["seed"] == plan["seeds"][row] == 1  # replicate 1: training.seed + 1
    assert np.flatnonzero(~arms.point_mask(row)).tolist() == sorted(aggregate["removed_units"])

    # new validation submodels (here: outputs that know nothing) change the LDS, not the estimate
    estimates = (workspace / "results/estimates.npz").read_bytes()
    (folder,) = (workspace / "results/validation_submodels").iterdir()
    for file in folder.glob("subset_*.npz"):
        arrays = load_npz(file)
        np.savez(file, logits=np.zeros_like(arrays["logits"]), fingerprint=arrays["fingerprint"])
    snakemake(workspace, "--forcerun", "estimate", "gather_experiment")
    assert (workspace / "results/estimates.npz").read_bytes() == estimates
    summary = json.loads((workspace / "results/validation.json").read_text())
    assert summary["lds_mean"] is None
    assert summary["lds_note"] == "constant behaviour on the validation submodels"
    assert "LDS not available: constant behaviour" in (workspace / "results/report.md").read_text()
