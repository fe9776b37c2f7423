"""Training one submodel: optimizer, learning-rate schedule, augmentation, precision, device.

Everything here follows the ``training`` section of the params. With the defaults (constant
learning rate, no momentum, no label smoothing, no augmentation, fp32) a submodel is trained
exactly as before these options existed, on CPU and GPU alike.

GPU notes
---------
* The training data stay on the device; integer images (uint8) are kept as they are and scaled
  to [0, 1] batch by batch, and augmentation (random translation and flip) runs on the device.
* Convolutional models use the channels-last memory layout on CUDA (faster convolutions on
  tensor cores); ``training.precision: bf16`` trains under bfloat16 autocast (weights, optimizer
  state and evaluation stay float32).
* What differs on GPU, and why: cuDNN picks convolution algorithms by timing them
  (``cudnn.benchmark``) and some kernels accumulate with atomics, so two runs of one seed can
  differ in the last bits, and fp32 convolutions use TF32 tensor cores by default (PyTorch's
  ``cudnn.allow_tf32``), which rounds inputs to 10 mantissa bits. ``training.deterministic:
  true`` turns off autotuning and asks for deterministic kernels (cuDNN, cuBLAS through
  ``CUBLAS_WORKSPACE_CONFIG``, ``torch.use_deterministic_algorithms``): repeated runs are then
  bit-identical on one machine and software stack, at some speed cost. GPU and CPU results
  still differ at floating-point level (other kernels, other summation orders).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch

from ame.errors import UserError
from ame.training.models import CONV_MODELS, build_model

CROP_PADDING = 2  # crop_flip: translations of up to 2 pixels, as in the authors' CIFAR-10 code
PREDICT_BATCH = 4096  # query points evaluated per forward pass


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Float inputs as they are; integer images (0..255) scaled to [0, 1] on their device."""
    return x if x.is_floating_point() else x.float().div_(255.0)


def configure_backends(settings: dict, device: torch.device) -> None:
    """Deterministic kernels when ``training.deterministic`` is true; cuDNN autotuning otherwise.

    These are process-wide torch switches: a training job sets them once for all its submodels.
    """
    deterministic = bool(settings["deterministic"])
    if deterministic:
        # cuBLAS is deterministic only with a fixed workspace; must be set before its first use.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic


def channels_last(settings: dict, X: torch.Tensor) -> bool:
    """Channels-last layout for conv models on CUDA, for batched images (N, C, H, W) only: grey
    (N, H, W) inputs get their channel inside the model and keep the default layout."""
    return X.device.type == "cuda" and settings["model"] in CONV_MODELS and X.ndim == 4


def autocast(settings: dict, device: torch.device):
    if settings["precision"] == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(parameters, settings: dict) -> torch.optim.Optimizer:
    """Adam or SGD with L2 weight decay added to the gradient (torch's ``weight_decay``)."""
    if settings["optimizer"] == "adam":
        return torch.optim.Adam(
            parameters, lr=settings["lr"], weight_decay=settings["weight_decay"]
        )
    return torch.optim.SGD(
        parameters,
        lr=settings["lr"],
        momentum=settings["momentum"],
        nesterov=settings["nesterov"],
        weight_decay=settings["weight_decay"],
    )


def learning_rate(settings: dict, step: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based).

    ``lr_schedule`` null: constant ``lr``. Otherwise ``lr`` times the piecewise-linear
    interpolation of the knots ``[[fraction of steps, factor], ...]`` at ``step / steps``; the
    paper's ``[[0, 0.0625], [0.16, 1], [1, 0.0025]]`` goes 0.025 -> 0.4 at step 400 -> 0.001 over
    2,500 steps with ``lr: 0.4``, like the authors' code.
    """
    knots = settings["lr_schedule"]
    if knots is None:
        return settings["lr"]
    fractions, factors = zip(*knots, strict=True)
    return settings["lr"] * float(np.interp(step / settings["steps"], fractions, factors))


def augment(images: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """``crop_flip``: each image of (batch, C, H, W) shifted by up to ``CROP_PADDING`` pixels
    (zero padding, size kept) and flipped left-right with probability 1/2, on its device."""
    if kind == "none":
        return images
    if kind != "crop_flip":
        raise UserError(f"training.augment: unknown augmentation {kind!r}")
    if images.ndim != 4:
        raise UserError(
            f"training.augment: crop_flip needs images of shape (C, H, W), got inputs of shape "
            f"{tuple(images.shape[1:])}"
        )
    n, _, height, width = images.shape
    device, pad = images.device, CROP_PADDING
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator, device=device)
    rows = (dy + torch.arange(height, device=device))[:, :, None]
    cols = (dx + torch.arange(width, device=device))[:, None, :]
    batch = torch.arange(n, device=device)[:, None, None]
    shifted = padded[batch, :, rows, cols].permute(0, 3, 1, 2)  # (n, H, W, C) -> (n, C, H, W)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return torch.where(flip[:, None, None, None], shifted.flip(3), shifted)


def fit_submodel(
    X: torch.Tensor,
    y: torch.Tensor,
    rows: torch.Tensor,
    n_classes: int,
    settings: dict,
    seed: int,
) -> torch.nn.Module:
    """Train one submodel on ``X[rows]`` for exactly ``settings['steps']`` optimizer steps.

    Parameters
    ----------
    X : Tensor of shape (n_points, *input_shape), float or uint8 images, on the training device
    y : Tensor of int64, shape (n_points,)
    rows : Tensor of int64, shape (n_rows,): the subset
    seed : int
        Seeds the initialisation (global generator) and the batches and augmentation (a
        generator of the device).
    """
    torch.manual_seed(seed)
    generator = torch.Generator(device=X.device).manual_seed(seed)
    model = build_model(settings["model"], tuple(X.shape[1:]), n_classes, settings["hidden"])
    model = model.to(X.device)
    layout = torch.channels_last if channels_last(settings, X) else None
    if layout is not None:
        model = model.to(memory_format=layout)
    optimizer = make_optimizer(model.parameters(), settings)
    if len(rows) == 0:
        return model
    X_sub, y_sub = X[rows], y[rows]
    batch = settings["batch_size"]
    full_batch = batch is None or batch >= len(rows)
    if full_batch:
        X_sub = as_float(X_sub)
    scheduled = settings["lr_schedule"] is not None
    for step in range(settings["steps"]):
        if full_batch:
            inputs, targets = X_sub, y_sub
        else:
            pick = torch.randint(len(rows), (batch,), generator=generator, device=X.device)
            inputs, targets = X_sub[pick], y_sub[pick]
        inputs = as_float(augment(inputs, settings["augment"], generator))
        inputs = inputs.contiguous(memory_format=layout or torch.contiguous_format)
        if scheduled:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(settings, step)
        optimizer.zero_grad(set_to_none=True)
        with autocast(settings, X.device):
            loss = torch.nn.functional.cross_entropy(
                model(inputs), targets, label_smoothing=settings["label_smoothing"]
            )
        loss.backward()
        optimizer.step()
    return model


@torch.no_grad()
def predict(model: torch.nn.Module, X: torch.Tensor, settings: dict) -> np.ndarray:
    """Float32 logits of shape (n, n_classes) of the model in eval mode, in float32 arithmetic."""
    model.eval()
    layout = torch.channels_last if channels_last(settings, X) else torch.contiguous_format
    outputs = []
    for start in range(0, max(len(X), 1), PREDICT_BATCH):
        inputs = as_float(X[start : start + PREDICT_BATCH]).contiguous(memory_format=layout)
        outputs.append(model(inputs).float())
    return torch.cat(outputs).cpu().numpy()
