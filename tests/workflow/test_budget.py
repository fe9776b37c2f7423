"""Growing and shrinking the budget, through Snakemake, `dvc repro` and `dvc exp run`.

Subset i depends only on (sampling.seed, i) and its submodel file lives under a key that the
budget does not enter, so a larger budget trains only the new subsets and a smaller one reuses
the prefix; gathering reads exactly subsets 0..m-1, whatever else the directory holds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    FAST,
    copy_workspace,
    file_state,
    jobs_run,
    make_workspace,
    run,
    snakemake,
    write_params,
)
from quality import check_run

from ame.artifacts import load_npz
from ame.sampling import MaskSet

pytestmark = pytest.mark.slow

BEHAVIOURS = "results/behaviours.npz"
SUBMODELS = "results/submodels"


def gathered(workspace: Path) -> np.ndarray:
    return load_npz(workspace / BEHAVIOURS)["subsets"]


def metrics(workspace: Path) -> dict:
    return json.loads((workspace / "results/metrics.json").read_text())


def output(result) -> str:
    return result.stdout + result.stderr


def test_snakemake_trains_only_new_subsets_and_gathers_exactly_the_prefix(tmp_path):
    workspace = make_workspace(tmp_path / "ws", FAST)  # 40 subsets, packs of 10
    assert jobs_run(output(snakemake(workspace, BEHAVIOURS)), "train") == 4
    first_40 = file_state(workspace, SUBMODELS)

    write_params(workspace, {"sampling": {"n_subsets": 60}})
    assert jobs_run(output(snakemake(workspace, BEHAVIOURS)), "train") == 2
    assert np.array_equal(gathered(workspace), np.arange(60))
    all_60 = file_state(workspace, SUBMODELS)
    assert len(all_60) == 60
    assert {k: all_60[k] for k in first_40} == first_40  # the first 40 were not retrained

    write_params(workspace, {"sampling": {"n_subsets": 35}})
    assert jobs_run(output(snakemake(workspace, BEHAVIOURS)), "train") == 0
    assert np.array_equal(gathered(workspace), np.arange(35))  # not 60, not 40
    assert file_state(workspace, SUBMODELS) == all_60  # kept for a later, larger budget

    write_params(workspace, {"sampling": {"n_subsets": 60}})
    assert jobs_run(output(snakemake(workspace, BEHAVIOURS)), "train") == 0
    assert np.array_equal(gathered(workspace), np.arange(60))


@pytest.fixture
def copy_of_committed(committed, tmp_path) -> Path:
    """The session's committed tiny study (conftest), 40 subsets."""
    return copy_workspace(committed.path, tmp_path / "ws")


def test_dvc_repro_after_shrinking_within_a_pack_aggregates_the_new_budget(copy_of_committed):
    """Ecosystem notes §2.4: 40 -> 35 subsets keeps the rows of masks.npz (the budget is rounded
    up to whole packs of 10) and every submodel file. The gather stage must still rerun: the
    mask artifact records the budget, and the stage also lists the `sampling` params; without
    either DVC would skip gather, estimate and evaluate, and metrics.json would still say 40."""
    workspace = copy_of_committed
    masks = MaskSet.load(workspace / "results/masks.npz")
    submodels = file_state(workspace, SUBMODELS)
    fingerprint_40 = metrics(workspace)["run_fingerprint"]
    write_params(workspace, {"sampling": {"n_subsets": 35}})
    result = run(["dvc", "repro"], workspace)
    assert "Running stage 'gather'" in result.stdout
    assert jobs_run(output(result), "train") == 0
    shrunk = MaskSet.load(workspace / "results/masks.npz")
    assert (masks.budget, shrunk.budget) == (40, 35)
    assert np.array_equal(shrunk.packed, masks.packed) and np.array_equal(shrunk.p, masks.p)
    assert file_state(workspace, SUBMODELS) == submodels
    assert np.array_equal(gathered(workspace), np.arange(35))
    assert metrics(workspace)["n_submodels"] == 35
    assert metrics(workspace)["run_fingerprint"] != fingerprint_40
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], workspace).stdout


def test_dvc_exp_run_grows_then_shrinks_the_budget(copy_of_committed):
    workspace = copy_of_committed
    first_40 = file_state(workspace, SUBMODELS)

    grown = run(["dvc", "exp", "run", "--set-param", "sampling.n_subsets=60"], workspace)
    assert jobs_run(output(grown), "train") == 2
    assert metrics(workspace)["n_submodels"] == 60
    check_run(workspace / "results/estimates.npz", workspace / "data/prepared/dataset.npz")
    after = file_state(workspace, SUBMODELS)
    assert {k: after[k] for k in first_40} == first_40

    shrunk = run(["dvc", "exp", "run", "--set-param", "sampling.n_subsets=30"], workspace)
    assert "Running stage 'gather'" in shrunk.stdout
    assert jobs_run(output(shrunk), "train") == 0
    assert metrics(workspace)["n_submodels"] == 30
    assert np.array_equal(gathered(workspace), np.arange(30))
    assert file_state(workspace, SUBMODELS) == after

    table = json.loads(run(["dvc", "exp", "show", "--json"], workspace).stdout)
    assert table  # both experiments are recorded against the baseline commit
