import copy
import json

import numpy as np
import pytest
import torch

from ame import scenarios
from ame.data.digits import digits_backdoor
from ame.pipeline import params
from ame.pipeline.plan import design
from ame.pipeline.submodels import SubmodelStore
from ame.sampling import MaskSet
from ame.training import vectorized
from ame.training.fit import fit_submodel
from ame.training.jobs import train_subsets
from ame.training.vectorized import fit_submodels


@pytest.fixture(scope="module")
def config():
    config = params.load("params.yaml")
    config["training"]["steps"] = 30
    return config


@pytest.fixture(scope="module")
def problem(config):
    dataset = digits_backdoor(n_poisons=10)
    masks = MaskSet.draw(dataset.n_points, 8, design(config), seed=0)
    rows = [torch.as_tensor(np.flatnonzero(masks.point_mask(i))) for i in range(masks.n_subsets)]
    rows[3] = rows[3][:5]  # a tiny subset among large ones: another size group
    return dataset, masks, rows


@pytest.fixture
def float64():
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(torch.float32)


def both_ways(dataset, rows, settings, seeds, dtype=torch.float32):
    X = torch.as_tensor(dataset.X_train, dtype=dtype)
    y = torch.as_tensor(dataset.y_train)
    Xq = torch.as_tensor(dataset.X_query, dtype=dtype)
    loop = [fit_submodel(X, y, r, 10, settings, s) for r, s in zip(rows, seeds, strict=True)]
    together = fit_submodels(X, y, rows, 10, settings, seeds)
    with torch.no_grad():
        return (
            torch.stack([m.eval()(Xq) for m in loop]),
            torch.stack([m.eval()(Xq) for m in together]),
        )


RECIPES = [
    {},
    {
        "optimizer": "sgd",
        "lr": 0.5,
        "momentum": 0.9,
        "nesterov": True,
        "label_smoothing": 0.1,
        "lr_schedule": [[0, 0.1], [0.3, 1.0], [1, 0.01]],
    },
]


@pytest.mark.parametrize("model", ["linear", "mlp"])
@pytest.mark.parametrize("recipe", RECIPES)
def test_vectorized_equals_loop_in_float64(config, problem, float64, model, recipe):
    dataset, _, rows = problem
    settings = {**config["training"], "model": model, "hidden": 16, **recipe}
    loop, together = both_ways(dataset, rows, settings, [0, 1, 2, 3, 4, 5, 6, 7], torch.float64)
    assert loop.dtype == torch.float64
    np.testing.assert_allclose(together.numpy(), loop.numpy(), rtol=0, atol=1e-9)


def test_vectorized_equals_loop_in_float32(config, problem):
    dataset, _, rows = problem
    loop, together = both_ways(dataset, rows, config["training"], [5] * len(rows))
    np.testing.assert_allclose(together.numpy(), loop.numpy(), rtol=0, atol=1e-4)


def test_groups_capped_by_memory_and_empty_subsets_untrained(config, problem, monkeypatch):
    dataset, _, rows = problem
    assert vectorized._groups([100, 95, 80, 0, 99], 1, 0) == [[0, 4, 1], [2]]
    monkeypatch.setattr(vectorized, "MEMORY_BUDGET", 1)  # one model per group
    subsets = [rows[0], torch.empty(0, dtype=torch.int64), rows[1]]
    loop, together = both_ways(dataset, subsets, config["training"], [0, 1, 2])
    np.testing.assert_allclose(together.numpy(), loop.numpy(), rtol=0, atol=1e-4)
    torch.manual_seed(1)
    untrained = torch.nn.Linear(64, 10)
    np.testing.assert_array_equal(
        fit_submodels(
            torch.as_tensor(dataset.X_train),
            torch.as_tensor(dataset.y_train),
            subsets[1:2],
            10,
            config["training"],
            [1],
        )[0][1]
        .weight.detach()
        .numpy(),
        untrained.weight.detach().numpy(),
    )


def test_train_subsets_writes_the_same_files_either_way(config, problem, tmp_path):
    dataset, masks, _ = problem
    results = {}
    for vectorize in (False, True):
        c = copy.deepcopy(config)
        c["training"].update(vectorize=vectorize, save_weights=True)
        out = tmp_path / str(vectorize)
        train_subsets(
            scenarios.trainer(c, dataset),
            dataset,
            masks,
            range(1, 6),
            c,
            SubmodelStore(out, save_weights=c["training"]["save_weights"]),
        )
        results[vectorize] = [np.load(SubmodelStore(out).path(i)) for i in range(1, 6)]
        assert SubmodelStore(out).path(5, ".safetensors").is_file()
    for loop, together in zip(results[False], results[True], strict=True):
        assert str(loop["fingerprint"]) == str(together["fingerprint"])
        np.testing.assert_allclose(together["logits"], loop["logits"], rtol=0, atol=1e-4)


def test_diverged_submodels_are_retried_when_vectorized(config, problem, tmp_path):
    dataset, masks, _ = problem
    bad = copy.deepcopy(config)
    bad["training"].update(optimizer="sgd", lr=1e30)
    train_subsets(
        scenarios.trainer(bad, dataset),
        dataset,
        masks,
        range(0, 2),
        bad,
        SubmodelStore(tmp_path, save_weights=bad["training"]["save_weights"]),
    )
    record = json.loads(str(np.load(SubmodelStore(tmp_path).path(1))["fingerprint"]))
    assert record["status"] == "diverged" and record["attempts"] == 2
    assert record["trained_seed"] == record["seed"] + 1_000_003


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"batch_size": 32}, r"full-batch only \(batch_size: null\)"),
        ({"model": "resnet9"}, "only the linear and mlp models train vectorized, not resnet9"),
        ({"model": "cnn"}, "only the linear and mlp models train vectorized, not cnn"),
        ({"augment": "crop_flip"}, "no augmentation"),
        ({"precision": "bf16"}, r"runs in fp32"),
    ],
)
def test_settings_that_cannot_be_vectorized_are_refused(config, problem, change, message):
    dataset, _, rows = problem
    bad = copy.deepcopy(config)
    bad["training"].update(change)
    with pytest.raises(params.ParamsError, match=f"training.vectorize: .*{message}.*set vectorize"):
        params.validate(bad)
    with pytest.raises(ValueError, match=f"training.vectorize: .*{message}"):
        fit_submodels(
            torch.as_tensor(dataset.X_train),
            torch.as_tensor(dataset.y_train),
            rows[:1],
            10,
            bad["training"],
            [0],
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"momentum": 0.9}, "training.momentum: momentum and nesterov apply to optimizer sgd only"),
        ({"optimizer": "sgd", "nesterov": True}, "training.nesterov: .*needs momentum > 0"),
        ({"lr_schedule": [[0, 1], [0.5, 0.1]]}, "training.lr_schedule: .*from 0 to 1"),
        ({"lr_schedule": [[0, 1]]}, r"training.lr_schedule: .*too short"),
    ],
)
def test_conflicting_training_keys_are_refused(config, change, message):
    bad = copy.deepcopy(config)
    bad["training"].update(change)
    with pytest.raises(params.ParamsError, match=message):
        params.validate(bad)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("model", ["linear", "mlp"])
def test_vectorized_equals_loop_on_gpu(config, problem, float64, model):
    dataset, _, rows = problem
    settings = {**config["training"], "model": model, "hidden": 16}
    X = torch.as_tensor(dataset.X_train, dtype=torch.float64, device="cuda")
    y = torch.as_tensor(dataset.y_train, device="cuda")
    rows = [r.cuda() for r in rows]
    loop = [fit_submodel(X, y, r, 10, settings, 0) for r in rows]
    together = fit_submodels(X, y, rows, 10, settings, [0] * len(rows))
    Xq = torch.as_tensor(dataset.X_query, dtype=torch.float64, device="cuda")
    with torch.no_grad():
        for a, b in zip(loop, together, strict=True):
            np.testing.assert_allclose(b(Xq).cpu().numpy(), a(Xq).cpu().numpy(), atol=1e-9)
