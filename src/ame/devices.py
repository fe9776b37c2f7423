"""Which torch device a step runs on: ``auto`` takes the first visible CUDA device (respecting
CUDA_VISIBLE_DEVICES), else the CPU. Torch is imported only when asked."""

from __future__ import annotations

from ame.errors import UserError


def resolve_device(name: str, key: str) -> str:
    """The device ``name`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``) stands for; ``key`` is the
    setting it came from, named in the error when CUDA is asked for and none is visible."""
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{key}: cuda requested but no CUDA device is visible")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name
