"""The two worked plug-in examples, each run with `dvc repro` in its own study directory at a
tiny size (the documented budgets are measured by benchmarks/plugin_examples.py)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from conftest import REPO, make_workspace, run
from quality import check_run

pytestmark = pytest.mark.slow

TINY = {
    "training": {"subsets_per_job": 10},
    "estimation": {"n_folds": 3, "n_bootstrap": 0, "n_lambdas": 20, "budget_fractions": [1.0]},
    "validation": {"enabled": False},
}
#: Per example, the smallest run whose debiased AMEs rank the planted points (quality.py):
#: scikit-learn fits take milliseconds, so 100 subsets in one job; the CNN learns the backdoor
#: in 30 steps with 15 poisons, and 80 subsets then rank them.
SIZES = {
    "sklearn_mislabel": (
        {"sampling": {"n_subsets": 100}, "training": {"subsets_per_job": 100}},
        {},
    ),
    "torch_backdoor": ({"sampling": {"n_subsets": 80}}, {"steps": 30, "n_poisons": 15}),
}


@pytest.mark.parametrize("example", sorted(SIZES))
def test_example_runs_with_dvc_repro_and_reports(tmp_path, example):
    workspace = make_workspace(tmp_path / "ws", git=True)
    study = workspace / "examples" / example
    shutil.copytree(REPO / "examples" / example, study, ignore=shutil.ignore_patterns(
        "results", "data", "logs", ".snakemake", "dvc.lock", "__pycache__", "tmp"))  # fmt: skip
    overlay = yaml.safe_load((study / "params.yaml").read_text())
    sizes, options = SIZES[example]
    for overrides in (TINY, sizes):
        for section, values in overrides.items():
            overlay.setdefault(section, {}).update(values)
    overlay["dataset"]["options"].update(options)
    (study / "params.yaml").write_text(yaml.safe_dump(overlay, sort_keys=False))
    result = run(["dvc", "repro"], study)
    assert "Running stage 'run'" in result.stdout
    metrics = json.loads((study / "results/metrics.json").read_text())
    assert metrics["n_submodels"] == overlay["sampling"]["n_subsets"]
    direction = overlay["estimation"].get("direction", "positive")
    check_run(study / "results/estimates.npz", study / "data/prepared/dataset.npz", direction)
    report = (study / "results/report.md").read_text()
    assert report.startswith("# AME report")
    if overlay["training"].get("training_points"):  # the relabel list from the same submodels
        check_relabel_list(study, metrics["n_submodels"])
        assert "## Labels to check" in report
    again = run(["dvc", "repro"], study)
    assert "Data and pipelines are up to date" in again.stdout
    (study / "plugin.py").write_text((study / "plugin.py").read_text() + "\n# edited\n")
    assert "run" in run(["dvc", "status"], study).stdout  # the plug-in file is a dependency


def check_relabel_list(study, n_submodels):
    """mislabels.csv values every training point, listed ones first; its summary counts them;
    the flipped labels (the plug-in's ground truth) make up most of a non-empty list."""
    import numpy as np
    import pandas as pd

    table = pd.read_csv(study / "results/mislabels.csv")
    summary = json.loads((study / "results/mislabels.json").read_text())
    truth = np.load(study / "data/prepared/dataset.npz")["ground_truth"]
    assert len(table) == 398 and summary["n_submodels"] == n_submodels
    assert summary["listed"] == table["listed"].sum() and table["listed"].is_monotonic_decreasing
    listed = table.loc[table["listed"], "point"]
    assert summary["listed"] > 0 and listed.isin(truth).mean() >= 0.8
