"""Sharing results through a DVC remote: push, clone, pull, and trust what was pulled.

The collaborator path (docs/tutorials/sharing.md):

    git clone <repo> && cd <repo> && dvc pull && dvc repro

After the pull, `dvc repro` is the gatekeeper: it compares params and dependency hashes with
dvc.lock and reruns nothing ("Data and pipelines are up to date"). A bare `snakemake` must not
retrain either, although `dvc pull` gives restored files fresh mtimes in arbitrary order and
leaves no `.snakemake/` metadata (ecosystem notes §2.5): the train rule's inputs are ancient()
and the submodel directory is named by the run key of the settings, so neither mtimes nor
missing metadata can make finished submodels look outdated, and a changed setting shows up as
missing files under a new key.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from pathlib import Path

import pytest
from conftest import (
    GIT_COMMIT,
    REPO,
    copy_workspace,
    file_state,
    jobs_run,
    run,
    snakemake,
    write_params,
)
from quality import check_run

SHARED = (
    "results/metrics.json",
    "results/scores.csv",
    "results/behaviours.npz",
    "results/masks.npz",
    "results/estimates.npz",
    "data/prepared/dataset.npz",
)


def stages_run(result) -> set[str]:
    return set(re.findall(r"Running stage '(\w+)'", result.stdout))


def clone(origin: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(origin), str(dest)], dest.parent)
    return dest


def test_the_repository_names_a_default_remote():
    """A placeholder remote is committed (users point it at their storage and commit again);
    downloads are verified, and no credential is stored."""
    settings = run(["dvc", "config", "--project", "--list"], REPO).stdout.split()
    assert "core.remote=shared" in settings and "remote.shared.verify=true" in settings
    assert any(line.startswith("remote.shared.url=") for line in settings)
    assert not re.search(r"access_key|secret|password|token", " ".join(settings), re.I)


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sharing") / "remote"


@pytest.fixture(scope="module")
def origin(committed, tmp_path_factory, remote) -> Path:
    """Workspace A: the session's committed tiny study (conftest) with the repository's remote
    config pointed at a local directory, committed, `dvc push`."""
    workspace = copy_workspace(committed.path, tmp_path_factory.mktemp("sharing") / "origin")
    shutil.copy(REPO / ".dvc/config", workspace / ".dvc/config")
    run(["dvc", "remote", "modify", "shared", "url", str(remote)], workspace)
    run(["git", "add", "-A"], workspace)
    run([*GIT_COMMIT, "-m", "the team's remote"], workspace)
    run(["dvc", "push"], workspace)
    return workspace


@pytest.mark.slow
def test_collaborator_pulls_and_dvc_repro_has_nothing_to_do(origin, tmp_path):
    workspace = clone(origin, tmp_path / "collaborator")
    assert not (workspace / "results").exists()
    run(["dvc", "pull"], workspace)
    result = run(["dvc", "repro"], workspace)
    assert "Data and pipelines are up to date" in result.stdout
    assert not stages_run(result)
    for name in SHARED:
        assert (workspace / name).read_bytes() == (origin / name).read_bytes(), name
    check_run(workspace / "results/estimates.npz", workspace / "data/prepared/dataset.npz")
    assert (
        file_state(workspace, "results/submodels").keys()
        == file_state(origin, "results/submodels").keys()
    )

    # A bare `snakemake` after the pull must not retrain (ecosystem notes §2.5). First with the
    # mtimes the pull gave, then in the worst order: data and masks newer than every submodel.
    # Without ancient() on the train inputs this dry run lists all 4 train jobs ("Updated input
    # files"); without the run key in the path a changed setting would go unnoticed here, since
    # no .snakemake metadata came with the pull.
    assert jobs_run(snakemake(workspace, "-n").stdout, "train") == 0
    future = time.time() + 60
    for name in ("data/prepared/dataset.npz", "results/masks.npz"):
        os.utime(workspace / name, (future, future))
    assert jobs_run(snakemake(workspace, "-n").stdout, "train") == 0


@pytest.mark.slow
def test_a_setting_changed_after_the_pull_reruns_exactly_what_depends_on_it(origin, tmp_path):
    workspace = clone(origin, tmp_path / "collaborator")
    run(["dvc", "pull"], workspace)
    old = file_state(workspace, "results/submodels")

    write_params(workspace, {"estimation": {"fdr": 0.2}})
    result = run(["dvc", "repro"], workspace)
    assert stages_run(result) == {"estimate", "evaluate", "report"}
    assert jobs_run(result.stdout + result.stderr, "train") == 0
    metrics = json.loads((workspace / "results/metrics.json").read_text())
    assert metrics["fdr_target"] == 0.2 and metrics["n_submodels"] == 40

    write_params(workspace, {"training": {"steps": 30}})
    result = run(["dvc", "repro"], workspace)
    # validate too: its held-out submodels and removal arms are trained with the new recipe
    assert stages_run(result) == {"train", "gather", "estimate", "evaluate", "validate", "report"}
    assert jobs_run(result.stdout + result.stderr, "train") == 4  # every pack, under a new key
    keys = sorted(p.name for p in (workspace / "results/submodels").iterdir())
    (old_key,) = {Path(name).parent.name for name in old}
    assert len(keys) == 2 and old_key in keys
    assert {
        k: v for k, v in file_state(workspace, "results/submodels").items() if old_key in k
    } == old  # the old key's submodels stay, untouched


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_server(monkeypatch):
    """An S3-compatible server (moto) on 127.0.0.1 with a bucket; credentials via env vars."""
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    port = free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="ame-dvc")
    yield endpoint
    server.stop()


@pytest.mark.slow
def test_push_to_and_pull_from_an_s3_remote(origin, tmp_path, s3_server):
    workspace = Path(shutil.copytree(origin, tmp_path / "origin", symlinks=True))
    run(["dvc", "remote", "modify", "shared", "url", "s3://ame-dvc/store"], workspace)
    run(["dvc", "remote", "modify", "shared", "endpointurl", s3_server], workspace)
    assert "testing" not in (workspace / ".dvc/config").read_text()  # credentials stay in env
    run(["git", "add", ".dvc/config"], workspace)
    run([*GIT_COMMIT, "-m", "team remote on S3"], workspace)
    run(["dvc", "push"], workspace)

    collaborator = clone(workspace, tmp_path / "collaborator")
    run(["dvc", "pull"], collaborator)
    for name in SHARED:
        assert (collaborator / name).read_bytes() == (origin / name).read_bytes(), name
    assert "Data and pipelines are up to date" in run(["dvc", "repro"], collaborator).stdout


def object_path(remote: Path, md5: str) -> Path:
    return remote / "files/md5" / md5[:2] / md5[2:]


@pytest.mark.slow
def test_a_corrupted_object_in_the_remote_is_caught(origin, remote, tmp_path):
    """A remote object replaced by another file's bytes (subset 12's output stored as subset
    13's). With `verify = true` (committed in .dvc/config) `dvc pull` rehashes what it downloads
    and refuses the directory; without it DVC trusts the object's name and even `dvc status`
    finds nothing wrong, and the fingerprint check of the gather step is the one that refuses."""
    broken = Path(shutil.copytree(remote, tmp_path / "remote"))
    lock = (origin / "dvc.lock").read_text()
    dir_md5 = re.search(r"path: results/submodels\n\s+hash: md5\n\s+md5: (\w+)\.dir", lock)
    assert dir_md5, lock
    manifest = json.loads(object_path(broken, dir_md5.group(1) + ".dir").read_text())
    md5 = {Path(m["relpath"]).name: m["md5"] for m in manifest}
    target = object_path(broken, md5["subset_000013.npz"])
    target.chmod(0o644)
    target.write_bytes(object_path(broken, md5["subset_000012.npz"]).read_bytes())

    workspace = clone(origin, tmp_path / "collaborator")
    run(["dvc", "remote", "modify", "--local", "shared", "url", str(broken)], workspace)
    pull = run(["dvc", "pull"], workspace, check=False)
    assert pull.returncode != 0
    assert "failed to pull" in pull.stderr and "results/submodels" in pull.stderr
    assert not list((workspace / "results").glob("submodels/*/subset_000013.npz"))

    run(["dvc", "remote", "modify", "--local", "shared", "verify", "false"], workspace)
    run(["dvc", "pull"], workspace)  # the corrupted file lands, unnoticed by DVC
    assert "Data and pipelines are up to date" in run(["dvc", "status"], workspace).stdout
    result = run(["dvc", "repro", "--force", "--single-item", "gather"], workspace, check=False)
    assert result.returncode != 0
    assert "subset 13 (results/submodels/" in result.stdout + result.stderr
    assert "fingerprint mismatch: subset is 12, expected 13" in result.stdout + result.stderr
