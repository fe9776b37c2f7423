"""Submodel architectures: small torch modules built from the ``training`` params."""

from __future__ import annotations

import math

from torch import nn

MODELS = ("linear", "mlp")


def build_model(name: str, input_shape: tuple[int, ...], n_classes: int, hidden: int = 64) -> nn.Module:
    """A fresh, randomly initialised submodel (seed the global torch generator before calling)."""
    n_inputs = math.prod(input_shape)
    if name == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(n_inputs, n_classes))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(n_inputs, hidden), nn.ReLU(),
                             nn.Linear(hidden, n_classes))
    raise ValueError(f"training.model: unknown model {name!r}; choose one of {MODELS}")
