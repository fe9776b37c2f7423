"""A scenario of another package, registered through the ``ame.scenarios`` entry point, runs end
to end through the real workflow with nothing of ame changed.

The package lives in one module (``small_digits.py``: the digits backdoor on a subsample of the
training points, trained by the built-in models) plus its distribution metadata, which is what
``pip install`` of a package declaring the entry point leaves on the path.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import make_workspace, snakemake
from quality import check_run

SCENARIO = '''
import numpy as np

from ame.data import Dataset, digits
from ame.scenarios.scenario import Scenario


class SmallDigits(Scenario):
    """The digits backdoor on the poisons and the first ``options.n_points`` clean points."""

    name = "small_digits"

    def describe(self, d):
        return {"n_points": d["options"]["n_points"] + d["n_poisons"],
                "n_query_points": len(digits.build(d).y_query), "n_sources": 0,
                "has_classes": True}

    def build(self, d):
        full = digits.build(d)
        clean = np.setdiff1d(np.arange(full.n_points), full.ground_truth)
        kept = np.sort(np.concatenate([full.ground_truth, clean[: d["options"]["n_points"]]]))
        meta = {**full.meta, "name": self.name}
        return Dataset(full.X_train[kept], full.y_train[kept], full.X_query, full.y_query,
                       np.searchsorted(kept, full.ground_truth), meta)
'''
ENTRY_POINTS = "[ame.scenarios]\nsmall_digits = small_digits:SmallDigits\n"


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """The package on the path of every process the test starts, as an installed one would be."""
    site = tmp_path / "site"
    info = site / "small_digits-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "small_digits.py").write_text(SCENARIO)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: small-digits\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    monkeypatch.setenv("PYTHONPATH", str(site))
    return site


def test_the_schema_lists_the_registered_names(installed):
    names = subprocess.run(
        [sys.executable, "-c", "from ame.pipeline import params\n"
         "print(params.schema()['properties']['dataset']['properties']['name']['enum'])"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert names.strip() == "['cifar10', 'digits', 'npz', 'plugin', 'small_digits']"


@pytest.mark.slow
def test_a_registered_scenario_runs_end_to_end_through_the_workflow(installed, tmp_path):
    workspace = make_workspace(
        tmp_path / "ws",
        {
            "dataset": {"name": "small_digits", "n_poisons": 10, "options": {"n_points": 590}},
            "sampling": {"n_subsets": 60},
        },
    )
    snakemake(workspace)
    metrics = json.loads((workspace / "results/metrics.json").read_text())
    assert metrics["n_points"] == 600 and metrics["n_submodels"] == 60
    check_run(workspace / "results/estimates.npz", workspace / "data/prepared/dataset.npz")
    report = (workspace / "results/report.md").read_text()
    assert "Dataset: **small_digits** (600 training points" in report
    assert "Submodels: **linear**" in report


def test_an_unknown_name_is_one_line_naming_the_key_and_the_registered_names(installed, tmp_path):
    workspace = make_workspace(tmp_path / "ws", {"dataset": {"name": "small_digit"}})
    done = snakemake(workspace, check=False)
    assert done.returncode != 0
    assert (
        "dataset.name: 'small_digit' is not allowed; choose one of ['cifar10', 'digits', 'npz', "
        "'plugin', 'small_digits']" in done.stderr
    )
