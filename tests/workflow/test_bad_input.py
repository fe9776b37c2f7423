"""Bad input stops the run with one line naming the culprit, and nothing is written.

Settings are checked when the workflow starts (before any job runs), so a bad value leaves every
file as it was. A bad artifact (a foreign or truncated submodel, another run's masks, another
dataset) is caught by the step that reads it: that step fails with one line naming the subset or
the file, Snakemake removes the step's own output (it deletes a job's outputs before running it),
and nothing else is created or changed. Loading never unpickles.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, file_state, make_workspace, snakemake, write_params

from ame.artifacts import ArtifactError, load_npz
from ame.data.digits import digits_backdoor
from ame.pipeline import params as ame_params
from ame.pipeline.plan import design
from ame.sampling import MaskSet

FAST = {
    "estimation": {"n_lambdas": 10, "n_bootstrap": 0, "budget_fractions": [1.0]},
}
BEHAVIOURS = "results/behaviours.npz"


def submodel_dir(workspace: Path) -> Path:
    (folder,) = (workspace / "results/submodels").iterdir()
    return folder


def error_lines(result, needle: str) -> list[str]:
    """The lines of a failed run's output that contain ``needle``; a traceback fails the test."""
    assert result.returncode != 0, "the run should have failed"
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    return [line for line in output.splitlines() if needle in line]


def assert_one_line(result, needle: str) -> str:
    lines = error_lines(result, needle)
    assert lines, f"no line with {needle!r} in:\n{(result.stdout + result.stderr)[-3000:]}"
    return lines[0]


def assert_nothing_written(workspace: Path) -> None:
    assert not (workspace / "results").exists()
    assert not (workspace / "data/prepared").exists()


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """A workspace whose submodels are trained and gathered (digits, 40 subsets, 4 packs)."""
    workspace = make_workspace(tmp_path_factory.mktemp("bad") / "done", FAST)
    snakemake(workspace, BEHAVIOURS)
    return workspace


@pytest.fixture
def copy_of_done(done, tmp_path) -> Path:
    """An independent copy (mtimes and Snakemake's metadata included) of the trained workspace."""
    return Path(shutil.copytree(done, tmp_path / "ws", symlinks=True))


# --- settings: checked at start-up, before anything runs ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"training": {"stepz": 10}}, "unknown key training.stepz; allowed keys:"),
        ({"sampling": {"n_subsetz": 10}}, "unknown key sampling.n_subsetz; allowed keys:"),
        ({"sampling": {"design": "grd"}}, "sampling.design: 'grd' is not allowed; choose one of"),
        (
            {"sampling": {"design": "fixed", "p": 1.5}},
            "sampling.p: 1.5 is greater than or equal to the maximum of 1",
        ),
        (
            {"sampling": {"design": "fixed", "p": 0}},
            "sampling.p: 0 is less than or equal to the minimum of 0",
        ),
        ({"sampling": {"p_values": [0.2, 1.0]}}, "sampling.p_values.1: 1.0 is greater than"),
        ({"sampling": {"n_subsets": 0}}, "sampling.n_subsets: 0 is less than the minimum of 1"),
        ({"sampling": {"n_subsets": -5}}, "sampling.n_subsets: -5 is less than the minimum of 1"),
        ({"sampling": {"n_subsets": None, "c": 0}}, "sampling.c: 0 is less than or equal to"),
        ({"sampling": {"n_subsets": None, "k": -1}}, "sampling.k: -1 is less than the minimum"),
        (
            {"sampling": {"design": "shapley", "eps": 0.5}},
            "sampling.eps: 0.5 is greater than or equal to the maximum of 0.5",
        ),
        (
            {"sampling": {"design": "shapley", "eps": 0.0}},
            "sampling.eps: 0.0 is less than or equal to the minimum of 0",
        ),
        ({"dataset": {"name": "imagenet"}}, "dataset.name: 'imagenet' is not allowed"),
        ({"training": {"model": "resnet1000"}}, "training.model: 'resnet1000' is not allowed"),
        ({"training": {"steps": 0}}, "training.steps: 0 is less than the minimum of 1"),
        ({"training": {"subsets_per_job": 7}}, "training.subsets_per_job: 7 is not allowed"),
        (
            {"behaviour": {"n_queries": 400}},
            "behaviour.n_queries: 400 exceeds the 324 query points of the dataset",
        ),
        (
            {"dataset": {"n_sources": 12, "n_poisoned_sources": 13}},
            "dataset.n_poisoned_sources: 13 exceeds min(n_sources, n_poisons) = 12",
        ),
        ({"dataset": {"n_sources": 1}}, "dataset.n_sources: 1 is less than the minimum of 2"),
        ({"hierarchy": {"enabled": "yes"}}, "hierarchy.enabled: 'yes' is not of type 'boolean'"),
        (
            {"training": {"training_points": True}},
            "training.training_points: the digits scenario gives no outputs on training points",
        ),
        (
            {"stages": {"enabled": True}, "training": {"training_points": True}},
            "training.training_points: the relabel list is a flat study's; set stages.enabled",
        ),
    ],
    ids=lambda value: json.dumps(value) if isinstance(value, dict) else "",
)
def test_bad_setting_stops_the_workflow_before_any_job(tmp_path, overrides, message):
    workspace = make_workspace(tmp_path / "ws", FAST)
    write_params(workspace, overrides)
    result = snakemake(workspace, check=False)
    line = assert_one_line(result, message)
    assert line.startswith("ame: error in params.yaml: ")
    assert_nothing_written(workspace)


@pytest.mark.slow
def test_bad_setting_after_a_run_changes_no_file(copy_of_done):
    before = file_state(copy_of_done, "results", "data")
    for overrides, message in [
        ({"behaviour": {"n_queries": 400}}, "behaviour.n_queries: 400 exceeds the 324"),
        ({"sampling": {"p_values": [0.2, 1.0]}}, "sampling.p_values.1"),
    ]:
        original = (copy_of_done / "params.yaml").read_text()
        write_params(copy_of_done, overrides)
        assert_one_line(snakemake(copy_of_done, check=False), message)
        (copy_of_done / "params.yaml").write_text(original)
    assert file_state(copy_of_done, "results", "data") == before


# --- a user dataset (npz) that is missing, truncated or inconsistent ---------------------------


def write_user_npz(path: Path, n_train: int = 120, n_labels: int | None = None, **extra) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "X_train": rng.random((n_train, 8, 8), dtype=np.float32),
        "y_train": rng.integers(0, 10, n_labels or n_train),
        "X_query": rng.random((12, 8, 8), dtype=np.float32),
        "y_query": np.zeros(12, dtype=np.int64),
        **extra,
    }
    np.savez(path, **arrays)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["missing", "truncated", "labels", "query_rows", "no_y_query"])
def test_bad_dataset_file_is_named_and_nothing_is_written(tmp_path, fault):
    path = tmp_path / "mine.npz"
    if fault == "truncated":
        write_user_npz(path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif fault == "labels":
        write_user_npz(path, n_labels=110)
    elif fault == "query_rows":
        write_user_npz(path, X_query=np.zeros((12, 8, 7), dtype=np.float32))
    elif fault == "no_y_query":
        np.savez(
            path,
            X_train=np.zeros((20, 4)),
            y_train=np.zeros(20, dtype=np.int64),
            X_query=np.zeros((3, 4)),
        )
    workspace = make_workspace(
        tmp_path / "ws", {**FAST, "dataset": {"name": "npz", "path": str(path)}}
    )
    result = snakemake(workspace, check=False)
    message = {
        "missing": f"dataset.path: {path} not found",
        "truncated": f"{path}: cannot read array 'y_train'",
        "labels": f"{path}: X_train (120, 8, 8) and y_train (110,) must hold one label per",
        "query_rows": f"{path}: X_query rows (8, 7) differ from X_train rows (8, 8)",
        "no_y_query": f"{path}: y_query is missing",
    }[fault]
    assert_one_line(result, message)
    assert_nothing_written(workspace)


@pytest.mark.slow
def test_dataset_replaced_after_training_is_refused_by_gather(copy_of_done):
    """Another dataset of the same size (another split seed) put in place of the prepared one:
    submodels trained on the old data must not be aggregated with it."""
    other = copy_of_done / "other.yaml"
    config = yaml.safe_load((copy_of_done / "params.yaml").read_text())
    config["dataset"]["seed"] = 1
    other.write_text(yaml.safe_dump(config))
    masks = (copy_of_done / "results/masks.npz").read_bytes()
    before = file_state(copy_of_done, "results/submodels")
    from ame.cli import main

    assert (
        main(
            [
                "prepare",
                "--params",
                str(other),
                "--out",
                str(copy_of_done / "data/prepared/dataset.npz"),
            ]
        )
        == 0
    )
    result = snakemake(copy_of_done, BEHAVIOURS, check=False)
    assert_one_line(result, "subset 0 (results/submodels/")
    assert_one_line(result, "fingerprint mismatch: dataset is ")
    assert not (copy_of_done / BEHAVIOURS).exists()
    assert file_state(copy_of_done, "results/submodels") == before  # nothing retrained
    assert (copy_of_done / "results/masks.npz").read_bytes() == masks


# --- artifacts that do not belong to the run ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["foreign", "truncated", "no_fingerprint"])
def test_foreign_or_corrupted_submodel_is_named(copy_of_done, fault):
    folder = submodel_dir(copy_of_done)
    target = folder / "subset_000013.npz"
    if fault == "foreign":  # another subset's output under this subset's name
        shutil.copyfile(folder / "subset_000012.npz", target)
        message = (
            "subset 13 (results/submodels/{}/subset_000013.npz): fingerprint mismatch: "
            "subset is 12, expected 13"
        )
    elif fault == "truncated":
        target.write_bytes(target.read_bytes()[:300])
        message = "subset 13: results/submodels/{}/subset_000013.npz: not a readable .npz"
    else:
        np.savez(target, logits=np.zeros((324, 10), dtype=np.float32))
        message = "subset 13: results/submodels/{}/subset_000013.npz: missing arrays"
    message = message.format(folder.name)
    before = file_state(copy_of_done, "results", "data")
    result = snakemake(copy_of_done, BEHAVIOURS, check=False)
    assert_one_line(result, message)
    after = file_state(copy_of_done, "results", "data")
    assert after == {k: v for k, v in before.items() if k != BEHAVIOURS}  # only gather's output
    # the command line says the same in one line
    from ame.cli import main

    ws = copy_of_done
    argv = [
        "gather",
        "--params",
        str(ws / "params.yaml"),
        "--dataset",
        str(ws / "data/prepared/dataset.npz"),
        "--masks",
        str(ws / "results/masks.npz"),
        "--submodels",
        str(folder),
        "--out",
        str(ws / BEHAVIOURS),
    ]
    assert main(argv) == 2
    assert not (ws / BEHAVIOURS).exists()


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["other_seed", "other_size"])
def test_mask_artifact_of_another_run_is_refused(copy_of_done, fault):
    """results/masks.npz replaced by another run's (e.g. pulled from the wrong commit)."""
    config = ame_params.load(copy_of_done / "params.yaml")
    run_design = design(config)
    if fault == "other_seed":
        MaskSet.draw(1437, 40, run_design, seed=1).save(copy_of_done / "results/masks.npz")
        message = "subset 0 (results/submodels/"
        detail = "fingerprint mismatch: mask_sha256 is "
    else:
        MaskSet.draw(1440, 40, run_design, seed=0).save(copy_of_done / "results/masks.npz")
        message = detail = "mask artifact covers 1440 points but the dataset has 1437"
    before = file_state(copy_of_done, "results", "data")
    result = snakemake(copy_of_done, BEHAVIOURS, check=False)
    assert_one_line(result, message)
    assert_one_line(result, detail)
    after = file_state(copy_of_done, "results", "data")
    assert after == {k: v for k, v in before.items() if k != BEHAVIOURS}


# --- a submodel that diverges --------------------------------------------------------------------


@pytest.mark.slow
def test_diverged_submodels_are_retried_once_then_excluded_and_counted(tmp_path):
    """A training point of magnitude 1e36 makes plain SGD overflow on every subset that holds it
    (whatever the seed) and on no other: those are retried once with another seed, then left
    out of the regression, listed in behaviours.npz, warned about in the gather log and counted
    as n_excluded in metrics.json."""
    scenario = digits_backdoor()
    X_train = scenario.X_train.copy()
    X_train[700] = 1e36
    path = tmp_path / "diverging.npz"
    np.savez(
        path,
        X_train=X_train,
        y_train=scenario.y_train,
        X_query=scenario.X_query,
        y_query=scenario.y_query,
        ground_truth=scenario.ground_truth,
    )
    workspace = make_workspace(
        tmp_path / "ws",
        {
            **FAST,
            "dataset": {"name": "npz", "path": str(path)},
            "training": {"optimizer": "sgd", "lr": 0.05},
        },
    )
    snakemake(workspace)
    masks = MaskSet.load(workspace / "results/masks.npz")
    diverging = np.flatnonzero(masks.masks[:40, 700])
    assert 0 < len(diverging) < 40

    folder = submodel_dir(workspace)
    for index in range(40):
        record = json.loads(str(load_npz(folder / f"subset_{index:06d}.npz")["fingerprint"]))
        if index in diverging:
            assert (record["status"], record["attempts"]) == ("diverged", 2)
            assert record["trained_seed"] != record["seed"]  # the retry used another seed
        else:
            assert (record["status"], record["attempts"]) == ("ok", 1)
    behaviours = load_npz(workspace / BEHAVIOURS)
    assert json.loads(str(behaviours["meta"]))["excluded"] == diverging.tolist()
    assert np.array_equal(behaviours["subsets"], np.setdiff1d(np.arange(40), diverging))
    log = (workspace / "logs/gather.log").read_text()
    assert f"subset {diverging[0]} excluded: diverged" in log
    metrics = json.loads((workspace / "results/metrics.json").read_text())
    assert metrics["n_excluded"] == len(diverging)
    assert metrics["n_submodels"] == 40 - len(diverging)


# --- loading never unpickles -------------------------------------------------------------------


def test_artifacts_are_loaded_without_pickle():
    """Every np.load in the package passes allow_pickle=False; nothing else unpickles, except the
    CIFAR-10 reader, whose format is a pickle and whose unpickler admits only numpy arrays
    (joblib's ``Parallel``, which runs the Python call's evaluations, reads no file)."""
    np_loads, pickle_users = [], []
    for source in sorted((REPO / "src/ame").rglob("*.py")):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = getattr(node.func.value, "id", None)
                if (owner, node.func.attr) in (("np", "load"), ("numpy", "load")):
                    flags = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                    np_loads.append((source.name, flags.get("allow_pickle", "missing")))
                assert (owner, node.func.attr) not in {
                    ("torch", "load"),
                    ("pickle", "load"),
                    ("pickle", "loads"),
                    ("pd", "read_pickle"),
                    ("joblib", "load"),
                }, f"{source.name}: unpickles"
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = getattr(node, "module", None) or ""
                names = {a.name for a in node.names}
                unsafe = (
                    names - {"Parallel", "delayed"}
                    if module == "joblib"
                    else (names | {module}) & {"pickle", "dill", "joblib", "cloudpickle"}
                )
                if unsafe:
                    pickle_users.append(source.name)
    assert np_loads and all(flag is False for _, flag in np_loads), np_loads
    assert pickle_users in ([], ["cifar10.py"])
    if pickle_users:
        cifar = (REPO / "src/ame/data/cifar10.py").read_text()
        assert "def find_class" in cifar and "UnpicklingError" in cifar


def test_an_object_array_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "subset_000000.npz"
    np.savez(path, logits=np.array([{"evil": 1}], dtype=object), fingerprint=np.array("{}"))
    with pytest.raises(ArtifactError, match="not a readable .npz"):
        load_npz(path)
