"""The README's collaborator path on a clone of the repository itself, studies included.

A copy of the workflow files alone would not see what a real clone holds (the studies' own DVC
projects, whose outputs a sharer of the default study never pushes): this test clones the
repository, runs the default pipeline at the test size, `dvc remote add -d`, `dvc push`, commits,
and in a second clone runs exactly `dvc pull` and `dvc repro`.
"""

from __future__ import annotations

import pytest
from conftest import GIT_COMMIT, REPO, TINY, run, write_params
from quality import check_run

pytestmark = pytest.mark.slow
FAST = {"estimation": {"n_bootstrap": 0, "budget_fractions": [0.5, 1.0]}}


def test_plain_dvc_pull_then_dvc_repro_in_a_second_clone(tmp_path):
    if run(["git", "rev-parse", "--is-inside-work-tree"], REPO, check=False).returncode:
        pytest.skip("the repository is not a git clone")
    sharer = tmp_path / "sharer"
    run(["git", "clone", "-q", str(REPO), str(sharer)], tmp_path)
    assert (sharer / "studies/hierarchical/dvc.yaml").is_file()  # a study the sharer never runs
    write_params(sharer, TINY)
    write_params(sharer, FAST)
    run(["dvc", "repro"], sharer)
    run(["dvc", "remote", "add", "-d", "r", str(tmp_path / "storage")], sharer)
    run(["dvc", "push"], sharer)
    run(["git", "add", "-A"], sharer)
    run([*GIT_COMMIT, "-m", "results"], sharer)

    collaborator = tmp_path / "collaborator"
    run(["git", "clone", "-q", str(sharer), str(collaborator)], tmp_path)
    pulled = run(["dvc", "pull"], collaborator, check=False)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    repro = run(["dvc", "repro"], collaborator)
    assert "Data and pipelines are up to date" in repro.stdout
    assert "Running stage" not in repro.stdout
    for name in ("results/metrics.json", "results/scores.csv"):
        assert (collaborator / name).read_bytes() == (sharer / name).read_bytes(), name
    check_run(collaborator / "results/estimates.npz", collaborator / "data/prepared/dataset.npz")
