"""The deep-submodel study (studies/deep): `dvc repro` at a tiny size, then the small CNN through
`dvc exp run -S`, as the study's params file tells users (the figures at the documented budget
are measured by benchmarks/sample_efficiency.py)."""

from __future__ import annotations

import json

import pytest
from conftest import jobs_run, run, study_workspace
from quality import check_run

pytestmark = pytest.mark.slow

TINY = {  # 15 poisons and 30 steps: enough for the mlp's debiased AMEs to rank them (quality.py)
    "dataset": {"n_poisons": 15},
    "sampling": {"n_subsets": 40},
    "training": {"subsets_per_job": 10, "steps": 30},
    "behaviour": {"n_queries": 2},
    "estimation": {"n_folds": 3, "n_bootstrap": 0, "n_lambdas": 20, "budget_fractions": [1.0]},
    "validation": {
        "enabled": True,
        "n_subsets": 20,
        "removal_queries": 1,
        "replicates": 1,
    },
}


def test_deep_study_runs_the_mlp_then_the_cnn_through_dvc(tmp_path):
    study, shipped = study_workspace(tmp_path / "ws", "deep", TINY)
    assert shipped["training"] == {
        "model": "mlp", "hidden": 64, "vectorize": True, "lr": 0.01, "weight_decay": 0.03
    }  # fmt: skip

    first = run(["dvc", "repro"], study)
    assert "Running stage 'run'" in first.stdout
    assert json.loads((study / "results/metrics.json").read_text())["n_submodels"] == 40
    check_run(study / "results/estimates.npz", study / "data/prepared/dataset.npz")
    validation = json.loads((study / "results/validation.json").read_text())
    assert validation["n_validation_submodels"] == 20 and validation["removal_replicates"] == 1
    report = (study / "results/report.md").read_text()
    assert "Submodels: **mlp** (hidden 64), 30 adam steps at lr 0.01, weight decay 0.03" in report

    cnn = run(
        ["dvc", "exp", "run", "-S", "training.model=cnn", "-S", "training.hidden=2",
         "-S", "training.vectorize=false"],
        study,
    )  # fmt: skip
    assert jobs_run(cnn.stdout + cnn.stderr, "train") >= 4  # every subset retrained
    assert json.loads((study / "results/metrics.json").read_text())["n_submodels"] == 40
    # the cnn's run checks the swap of model only: at 2 channels, 30 steps and 40 subsets it
    # learns no backdoor (its quality: benchmarks/sample_efficiency.py)
    assert "Submodels: **cnn** (hidden 2)" in (study / "results/report.md").read_text()
