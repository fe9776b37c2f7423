"""The small CNN: its shape, that it learns a planted backdoor on CPU, determinism, and CUDA."""

import numpy as np
import pytest
import torch

from ame.data.digits import digits_backdoor
from ame.errors import UserError
from ame.pipeline import params
from ame.training.fit import configure_backends, fit_submodel, predict
from ame.training.models import build_model


@pytest.fixture(scope="module")
def settings():
    training = params.load("params.yaml")["training"]
    return {**training, "model": "cnn", "hidden": 4, "vectorize": False}


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        # conv C->w (9 C w + w), conv w->2w (18 w^2 + 2w), linear 2w (H/4) (W/4) -> 10
        ((8, 8), 9 * 4 + 4 + 18 * 16 + 8 + 8 * 4 * 10 + 10),  # grey digits: channel added
        ((3, 32, 32), 27 * 4 + 4 + 18 * 16 + 8 + 8 * 64 * 10 + 10),
    ],
)
def test_cnn_shapes_and_parameter_count(shape, expected):
    model = build_model("cnn", shape, 10, 4)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    assert model(torch.rand(5, *shape)).shape == (5, 10)


def test_cnn_refuses_inputs_that_are_not_images():
    with pytest.raises(UserError, match=r"training.model: cnn needs images .*shape \(64,\)"):
        build_model("cnn", (64,), 10)


def test_cnn_learns_the_planted_backdoor_on_cpu_and_repeats_itself(settings):
    dataset = digits_backdoor(n_poisons=30)
    X, y = torch.as_tensor(dataset.X_train), torch.as_tensor(dataset.y_train)
    X_query = torch.as_tensor(dataset.X_query)
    clean = torch.as_tensor(np.setdiff1d(np.arange(len(y)), dataset.ground_truth))
    everything = torch.arange(len(y))
    config = {**settings, "hidden": 4}

    def backdoor_rate(rows):
        logits = predict(fit_submodel(X, y, rows, 10, config, 0), X_query, config)
        return (logits.argmax(1) == dataset.y_query).mean(), logits

    poisoned_rate, logits = backdoor_rate(everything)
    clean_rate, _ = backdoor_rate(clean)
    assert poisoned_rate > 0.5 and clean_rate < 0.05  # the trigger works only if poisons taught it
    np.testing.assert_array_equal(logits, backdoor_rate(everything)[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cnn_on_gpu_is_deterministic_and_close_to_cpu(settings):
    dataset = digits_backdoor(n_poisons=10)
    config = {**settings, "deterministic": True, "steps": 20}
    device = torch.device("cuda")
    configure_backends(config, device)
    X, y = torch.as_tensor(dataset.X_train), torch.as_tensor(dataset.y_train)
    rows = torch.arange(0, len(y), 2)
    runs = [
        predict(
            fit_submodel(X.to(device), y.to(device), rows.to(device), 10, config, 1),
            torch.as_tensor(dataset.X_query, device=device),
            config,
        )
        for _ in range(2)
    ]
    configure_backends({**config, "deterministic": False}, device)
    np.testing.assert_array_equal(runs[0], runs[1])
    cpu = predict(fit_submodel(X, y, rows, 10, config, 1), torch.as_tensor(dataset.X_query), config)
    np.testing.assert_allclose(runs[0], cpu, atol=1e-3)
