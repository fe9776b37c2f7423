"""End-to-end: the real Snakemake and DVC on a tiny configuration."""

import json

import pytest
from conftest import copy_workspace, jobs_run, run, snakemake, write_params
from quality import check_run

pytestmark = pytest.mark.slow


@pytest.mark.smoke  # `make check`'s one end-to-end run
def test_snakemake_run_then_nothing_to_do_then_grow_budget(workspace):
    first = snakemake(workspace)
    assert jobs_run(first.stderr + first.stdout, "train") == 4
    metrics = json.loads((workspace / "results/metrics.json").read_text())
    assert metrics["n_submodels"] == 40 and metrics["n_queries"] == 3
    assert metrics["n_points"] == 1437 and metrics["fdr_target"] == 0.1
    check_run(workspace / "results/estimates.npz", workspace / "data/prepared/dataset.npz")
    assert (workspace / "results/report.md").read_text().startswith("# AME report")
    for plot in ("budget_curve.png", "ame_distribution.png", "top_images.png"):
        assert (workspace / "results/plots" / plot).stat().st_size > 1000

    assert "Nothing to be done" in snakemake(workspace, "-n").stdout

    write_params(workspace, {"sampling": {"n_subsets": 60}})
    dry = snakemake(workspace, "-n")
    assert jobs_run(dry.stdout, "train") == 2  # only the two new packs of 10
    snakemake(workspace)
    metrics = json.loads((workspace / "results/metrics.json").read_text())
    assert metrics["n_submodels"] == 60
    check_run(workspace / "results/estimates.npz", workspace / "data/prepared/dataset.npz")


def test_dvc_repro_runs_everything_then_nothing(committed, tmp_path):
    """The session's committed tiny study (conftest) was built by one `dvc repro`; a second,
    in a copy of it, has nothing to do."""
    assert "Running stage 'train'" in committed.repro_stdout
    workspace = copy_workspace(committed.path, tmp_path / "ws")
    metrics = json.loads((workspace / "results/metrics.json").read_text())
    assert metrics["n_submodels"] == 40
    check_run(workspace / "results/estimates.npz", workspace / "data/prepared/dataset.npz")
    second = run(["dvc", "repro"], workspace)
    assert "Data and pipelines are up to date" in second.stdout
    assert "Running stage" not in second.stdout


def test_bad_params_stop_the_workflow_with_one_line(workspace):
    write_params(workspace, {"sampling": {"design": "grd"}})
    result = snakemake(workspace, "-n", check=False)
    assert result.returncode != 0
    assert "sampling.design: 'grd' is not allowed" in result.stderr + result.stdout
    assert not (workspace / "results").exists()
