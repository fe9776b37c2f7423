"""Submodel architectures: small torch modules built from the ``training`` params."""

from __future__ import annotations

import math

import torch
from torch import nn

from ame.errors import UserError

MODELS = ("linear", "mlp", "cnn", "resnet9")
CONV_MODELS = ("cnn", "resnet9")  # image models: channels-last on GPU, crop-and-flip augmentation
#: Per-channel statistics of the CIFAR-10 training images on the [0, 1] scale (ResNet-9 input).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)


def build_model(
    name: str, input_shape: tuple[int, ...], n_classes: int, hidden: int = 64
) -> nn.Module:
    """A fresh, randomly initialised submodel (seed the global torch generator before calling).

    ``hidden`` is the width of the mlp's hidden layer, and the channels of the first convolution
    of the cnn and of ResNet-9 (64 in the paper; the other layers scale with it).
    """
    n_inputs = math.prod(input_shape)
    if name == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(n_inputs, n_classes))
    if name == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(n_inputs, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )
    if name == "cnn":
        if len(input_shape) not in (2, 3) or min(input_shape[-2:]) < 4:
            raise UserError(
                f"training.model: cnn needs images of shape (H, W) or (C, H, W) with H, W >= 4,"
                f" got inputs of shape {tuple(input_shape)}"
            )
        return SmallCNN(input_shape, n_classes, hidden)
    if name == "resnet9":
        if len(input_shape) != 3 or input_shape[0] != 3 or min(input_shape[1:]) < 16:
            raise UserError(
                f"training.model: resnet9 needs colour images of shape (3, H, W) with H, W >= 16,"
                f" got inputs of shape {tuple(input_shape)}"
            )
        return ResNet9(n_classes, hidden)
    raise UserError(f"training.model: unknown model {name!r}; choose one of {MODELS}")


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Residual(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.block = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x):
        return x + self.block(x)


class Normalize(nn.Module):
    """Fixed per-channel standardisation of [0, 1] images (buffers, not trained)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class GlobalMaxPool(nn.Module):
    """Max over the spatial dimensions; unlike AdaptiveMaxPool2d its CUDA backward is
    deterministic, so ``training.deterministic`` works with ResNet-9."""

    def forward(self, x):
        return x.amax(dim=(2, 3))


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class SmallCNN(nn.Sequential):
    """LeNet-style: two convolution-ReLU-max-pool blocks (``width`` and ``2 * width`` channels,
    3x3 kernels), then a linear layer on the flattened feature map: a convolutional network small
    enough to train thousands of times on CPU (digits, 8x8) and cheap on GPU (CIFAR-10, 32x32).

    The head sees where a feature sits (no global pooling), so a trigger in a fixed corner is as
    easy to learn as for the linear model. No batch normalisation, so that a submodel does not
    depend on how its rows are batched. Grey images of shape (H, W) get their channel axis inside
    the model.
    """

    def __init__(self, input_shape: tuple[int, ...], n_classes: int = 10, width: int = 16):
        channels = input_shape[0] if len(input_shape) == 3 else 1
        height, breadth = input_shape[-2] // 4, input_shape[-1] // 4
        super().__init__(
            AddChannel() if len(input_shape) == 2 else nn.Identity(),
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * height * breadth, n_classes),
        )


class AddChannel(nn.Module):
    def forward(self, x):
        return x.unsqueeze(1)


class ResNet9(nn.Sequential):
    """The DAWNBench ResNet-9 of the paper's CIFAR-10 experiments (Kakao Brain's torchskeleton
    variant used by the authors' code): widths w, 2w, 2w (residual), 4w, 4w (residual), 2w;
    global max pooling, a bias-free linear layer and a 0.2 output scale.

    Inputs are images on the [0, 1] scale, standardised inside the model with the CIFAR-10
    channel statistics. Convolution and linear weights are drawn uniformly with fan-in scaling
    (gain 1), batch-norm scales start at 1, as in the authors' code.
    """

    def __init__(self, n_classes: int = 10, width: int = 64):
        w = width
        super().__init__(
            Normalize(CIFAR_MEAN, CIFAR_STD),
            conv_bn(3, w),
            conv_bn(w, 2 * w, kernel=5, stride=2, padding=2),
            Residual(2 * w),
            conv_bn(2 * w, 4 * w),
            nn.MaxPool2d(2),
            Residual(4 * w),
            conv_bn(4 * w, 2 * w, padding=0),
            GlobalMaxPool(),
            nn.Linear(2 * w, n_classes, bias=False),
            Scale(0.2),
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_uniform_(module.weight, mode="fan_in", nonlinearity="linear")
