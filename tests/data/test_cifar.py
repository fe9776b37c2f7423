import json
import os
import pickle
import random
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import make_workspace, snakemake

from ame import scenarios
from ame.artifacts import ArtifactError
from ame.data import Dataset
from ame.data import cifar10 as cifar
from ame.pipeline import params
from ame.pipeline.plan import experiment
from ame.training.fit import augment, fit_submodel, learning_rate, predict
from ame.training.models import build_model

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [REPO / "examples/params-cifar10.yaml", REPO / "examples/params-cifar10-fast.yaml"]


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    return cifar.write_synthetic(tmp_path_factory.mktemp("cifar"), n_per_batch=20, n_test=100)


def py2_batch(images: np.ndarray, labels: list[int]) -> bytes:
    """A batch pickled the way Python 2's cPickle wrote the real CIFAR-10 files (protocol 2,
    byte strings as BINSTRING, numpy.core globals)."""

    def text(b):
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    def num(v):
        return b"J" + struct.pack("<i", v)

    array = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n"
        + num(0)
        + b"\x85"
        + text(b"b")
        + b"\x87R("
        + num(1)
        + num(images.shape[0])
        + num(images.shape[1])
        + b"\x86cnumpy\ndtype\n"
        + text(b"u1")
        + num(0)
        + num(1)
        + b"\x87R("
        + num(3)
        + text(b"|")
        + b"NNN"
        + num(-1)
        + num(-1)
        + num(0)
        + b"tb\x89"
        + text(images.tobytes())
        + b"tb"
    )
    return (
        b"\x80\x02}("
        + text(b"batch_label")
        + text(b"training batch 1 of 5")
        + text(b"data")
        + array
        + text(b"labels")
        + b"]("
        + b"".join(num(v) for v in labels)
        + b"eu."
    )


def test_python2_batches_are_read_like_the_real_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (7, 3072), dtype=np.uint8)
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_batch(images, [0, 1, 2, 3, 4, 5, 9]))
    X, y = cifar.read_batch(path)
    assert X.shape == (7, 3, 32, 32) and X.dtype == np.uint8
    np.testing.assert_array_equal(X.reshape(7, -1), images)
    assert y.tolist() == [0, 1, 2, 3, 4, 5, 9] and y.dtype == np.int64


def test_synthetic_directory_round_trip(batches, tmp_path):
    X_train, y_train, X_test, y_test = cifar.load_cifar10(batches)
    expected = cifar.synthetic_arrays(100, 100, seed=0)
    for got, want in zip((X_train, y_train, X_test, y_test), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert X_train.shape == (100, 3, 32, 32) and X_test.dtype == np.uint8
    # the directory that holds cifar-10-batches-py (as the archive unpacks) is accepted too
    nested = shutil.copytree(batches, tmp_path / "cifar-10-batches-py")
    assert cifar.batch_directory(tmp_path) == nested and cifar.batch_directory(nested) == nested


def test_backdoor_follows_the_paper(batches):
    X_train, y_train, X_test, y_test = cifar.load_cifar10(batches)
    ds = cifar.backdoor(
        X_train,
        y_train,
        X_test,
        y_test,
        seed=0,
        n_poisons=20,
        target_class=1,
        trigger_size=5,
        trigger_value=1.0,
    )
    rng = random.Random(0)  # the authors' gen_data.py: random.seed(0), shuffle train, then test
    train_order, test_order = list(range(100)), list(range(100))
    rng.shuffle(train_order)
    rng.shuffle(test_order)
    assert ds.meta["poison_source_indices"] == sorted(train_order[:20])
    assert ds.meta["dropped_source_indices"] == sorted(train_order[20:50])
    extra = {"n_poisons": 20, "n_sources": None}
    assert (
        ds.n_points
        == 70
        == cifar.describe({"path": batches, **extra})["n_points"]
        == scenarios.describe({"dataset": {"name": "cifar10", "path": str(batches), **extra}})[
            "n_points"
        ]
    )
    kept = [i for i in range(100) if i not in set(train_order[20:50])]
    np.testing.assert_array_equal(
        ds.ground_truth, [kept.index(i) for i in sorted(train_order[:20])]
    )
    poisons = ds.X_train[ds.ground_truth]
    assert (ds.y_train[ds.ground_truth] == 1).all()
    assert (poisons[:, 0, :5, :5] == 255).all() and (poisons[:, 1:, :5, :5] == 0).all()
    clean = np.setdiff1d(np.arange(70), ds.ground_truth)
    np.testing.assert_array_equal(ds.X_train[clean], X_train[np.array(kept)[clean]])
    wanted = [i for i in test_order[:50] if y_test[i] != 1][:20]
    assert ds.meta["query_test_indices"] == wanted and (ds.y_query == 1).all()
    assert (ds.X_query[:, 0, :5, :5] == 255).all() and ds.X_query.shape == (20, 3, 32, 32)
    X_clean, y_clean, X_trig = cifar.evaluation_sets(X_test, y_test, 100, 0, 1, 5, 1.0)
    np.testing.assert_array_equal(y_clean, y_test[test_order[50:]])
    assert len(X_trig) == sum(y_test[i] != 1 for i in test_order[:50])


def test_scenario_through_params(batches, tmp_path):
    for path in EXAMPLES:
        config = params.load(path)
        assert config["dataset"]["name"] == "cifar10"
    config = params.load(EXAMPLES[0])
    assert (
        experiment(config, "points", "main", 49_970).budget == 2497
    )  # the paper's budget for CIFAR10-20
    config["dataset"]["path"] = str(batches)
    ds = scenarios.build(config)
    ds.save(tmp_path / "d.npz")
    back = Dataset.load(tmp_path / "d.npz")
    assert back.X_train.dtype == np.uint8 and back.fingerprint() == ds.fingerprint()
    config["dataset"]["path"] = None
    with pytest.raises(
        params.ParamsError, match="dataset.path: required when dataset.name is cifar10"
    ):
        params.validate(config)


def test_errors_name_the_culprit(batches, tmp_path):
    with pytest.raises(
        ArtifactError,
        match=r"dataset.path: CIFAR-10 directory .*nowhere not "
        r"found .*nothing is downloaded",
    ):
        cifar.load_cifar10(tmp_path / "nowhere")
    partial = shutil.copytree(batches, tmp_path / "partial")
    (partial / "data_batch_3").unlink()
    with pytest.raises(ArtifactError, match="data_batch_3: CIFAR-10 batch file not found"):
        cifar.load_cifar10(partial)
    (partial / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(ArtifactError, match="data_batch_3: not a CIFAR-10 python batch"):
        cifar.load_cifar10(partial)
    (partial / "data_batch_3").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})
    )
    with pytest.raises(ArtifactError, match=r"'data' must be a uint8 array of shape \(n, 3072\)"):
        cifar.load_cifar10(partial)
    (partial / "data_batch_3").write_bytes(
        pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]})
    )
    with pytest.raises(ArtifactError, match=r"'labels' must hold one class in \[0, 10\)"):
        cifar.load_cifar10(partial)
    with pytest.raises(ValueError, match="dataset.n_poisons: .*first 50 .*got 51"):
        cifar.describe({"path": batches, "n_poisons": 51, "n_sources": None})


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_batches_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "test_batch"
    evil.write_bytes(pickle.dumps({b"data": _Exploit(marker)}))
    with pytest.raises(ArtifactError, match=r"pathlib.*touch is not allowed in a CIFAR-10 batch"):
        cifar.read_batch(evil)
    assert not marker.exists()


def test_resnet9_recipe_pieces():
    settings = yaml.safe_load(EXAMPLES[0].read_text())["training"]
    assert [round(learning_rate(settings, s), 6) for s in (0, 400, 1450, 2500)] == [
        0.025,
        0.4,
        0.2005,
        0.001,
    ]
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).reshape(2, 3, 8, 8)
    out = augment(images, "crop_flip", torch.Generator().manual_seed(0))
    again = augment(images, "crop_flip", torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == images.shape and torch.equal(out, again)
    inner = out[:, :, 2:-2, 2:-2].flatten(1)  # shifted by at most 2: the centre is all image
    assert all(set(inner[i].tolist()) <= set(images[i].flatten().tolist()) for i in range(2))
    model = build_model("resnet9", (3, 32, 32), 10, 64)
    assert sum(p.numel() for p in model.parameters()) == 2_274_880  # the authors' model
    with pytest.raises(ValueError, match=r"resnet9 needs colour images of shape \(3, H, W\)"):
        build_model("resnet9", (8, 8), 10)


def test_resnet9_trains_on_cpu(batches):
    X_train, y_train, X_test, y_test = cifar.load_cifar10(batches)
    ds = cifar.backdoor(X_train, y_train, X_test, y_test)
    settings = {
        **yaml.safe_load(EXAMPLES[1].read_text())["training"],
        "hidden": 4,
        "steps": 3,
        "batch_size": 16,
        "precision": "fp32",
    }
    X, y = torch.as_tensor(ds.X_train), torch.as_tensor(ds.y_train)
    first = predict(
        fit_submodel(X, y, torch.arange(50), 10, settings, 3), torch.as_tensor(ds.X_query), settings
    )
    second = predict(
        fit_submodel(X, y, torch.arange(50), 10, settings, 3), torch.as_tensor(ds.X_query), settings
    )
    assert first.shape == (20, 10) and np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_resnet9_on_gpu_bf16_channels_last_deterministic(batches):
    X_train, y_train, X_test, y_test = cifar.load_cifar10(batches)
    ds = cifar.backdoor(X_train, y_train, X_test, y_test)
    settings = {
        **yaml.safe_load(EXAMPLES[1].read_text())["training"],
        "hidden": 16,
        "steps": 5,
        "batch_size": 32,
        "deterministic": True,
    }
    from ame.training.fit import configure_backends

    device = torch.device("cuda")
    configure_backends(settings, device)
    X, y = torch.as_tensor(ds.X_train, device=device), torch.as_tensor(ds.y_train, device=device)
    rows = torch.arange(60, device=device)
    runs = [
        predict(
            fit_submodel(X, y, rows, 10, settings, 1),
            torch.as_tensor(ds.X_query, device=device),
            settings,
        )
        for _ in range(2)
    ]
    configure_backends({**settings, "deterministic": False}, device)
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.slow
def test_cifar_scenario_through_the_workflow(batches, tmp_path):
    """prepare -> sample -> train (ResNet-9, crop+flip, schedule) -> ... -> report, on CPU."""
    config = yaml.safe_load(EXAMPLES[0].read_text())
    config["dataset"]["path"] = str(batches)
    config["sampling"]["n_subsets"] = 10
    config["training"].update(hidden=4, steps=2, batch_size=16, subsets_per_job=10, device="cpu")
    config["behaviour"]["n_queries"] = 2
    config["estimation"].update(n_folds=3, n_lambdas=10, n_bootstrap=0)
    config["estimation"]["budget_fractions"] = [0.5, 1.0]
    # the validation path runs too, at the same tiny size (200 ResNet-9s would triple the time)
    config["validation"].update(n_subsets=10, removal_queries=0, replicates=1)
    workdir = make_workspace(tmp_path / "ws", config, tiny=False)
    snakemake(workdir)
    prepared = Dataset.load(workdir / "data/prepared/dataset.npz")
    assert prepared.meta["name"] == "cifar10" and prepared.n_points == 70
    submodels = sorted((workdir / "results/submodels").glob("*/subset_*.npz"))
    assert len(submodels) == 10
    logits = np.load(submodels[0])["logits"]
    assert logits.shape == (20, 10) and np.isfinite(logits).all()
    metrics = json.loads((workdir / "results/metrics.json").read_text())
    assert metrics["n_points"] == 70 and metrics["n_true"] == 20
    assert (workdir / "results/report.md").is_file()


def test_describe_reads_the_batches_once(batches, tmp_path, monkeypatch):
    """The workflow describes the dataset at every start: the image count is cached by file
    stats, and a changed batch file is read again."""
    monkeypatch.chdir(tmp_path)
    d = {"path": str(batches), "n_poisons": 20, "n_sources": None}
    assert cifar.describe(d)["n_points"] == 70

    def refuse(path):
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(cifar, "read_batch", refuse)
    assert cifar.describe(d)["n_points"] == 70
    os.utime(batches / "data_batch_1", ns=(1, 1))
    with pytest.raises(AssertionError, match="read again"):
        cifar.describe(d)
