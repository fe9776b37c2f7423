"""Training submodels on subsets: one subset at a time, or a pack of consecutive subsets per job.

Every submodel gets the same number of optimizer steps whatever its subset size, so small subsets
converge too, and writes its raw logits on every query point: new behaviours need no retraining.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from ame import provenance
from ame.data import Dataset
from ame.models import build_model
from ame.params import INDEX_DIGITS
from ame.sampling import MaskSet
from ame.store import atomic_path, atomic_savez

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 2  # a diverged submodel is retrained once with another seed, then excluded


def submodel_path(out_dir: str | Path, index: int, suffix: str = ".npz") -> Path:
    return Path(out_dir) / f"subset_{index:0{INDEX_DIGITS}d}{suffix}"


def resolve_device(name: str) -> torch.device:
    """``auto`` takes the first visible CUDA device (respecting CUDA_VISIBLE_DEVICES), else CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device: cuda requested but no CUDA device is visible")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def fit_submodel(X: torch.Tensor, y: torch.Tensor, rows: torch.Tensor, n_classes: int,
                 settings: dict, seed: int) -> torch.nn.Module:
    """Train one submodel on ``X[rows]`` for exactly ``settings['steps']`` optimizer steps."""
    torch.manual_seed(seed)
    generator = torch.Generator(device=X.device).manual_seed(seed)
    model = build_model(settings["model"], tuple(X.shape[1:]), n_classes, settings["hidden"])
    model = model.to(X.device)
    optimizer_cls = torch.optim.Adam if settings["optimizer"] == "adam" else torch.optim.SGD
    optimizer = optimizer_cls(model.parameters(), lr=settings["lr"],
                              weight_decay=settings["weight_decay"])
    if len(rows) == 0:
        return model
    X_sub, y_sub = X[rows], y[rows]
    batch = settings["batch_size"]
    for _ in range(settings["steps"]):
        if batch is None or batch >= len(rows):
            inputs, targets = X_sub, y_sub
        else:
            pick = torch.randint(len(rows), (batch,), generator=generator, device=X.device)
            inputs, targets = X_sub[pick], y_sub[pick]
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(inputs), targets).backward()
        optimizer.step()
    return model


def train_subsets(dataset: Dataset, masks: MaskSet, indices: range, config: dict,
                  out_dir: str | Path) -> dict:
    """Train the submodels of ``indices`` and write one output file per subset.

    Returns timing figures (seconds) for the overhead benchmark.
    """
    started = time.perf_counter()
    if indices.stop > masks.n_subsets:
        raise IndexError(f"subset {indices.stop - 1} is beyond the {masks.n_subsets} subsets of "
                         "the mask artifact")
    if masks.n_points != dataset.n_points:
        raise ValueError(f"masks cover {masks.n_points} points but the dataset has "
                         f"{dataset.n_points}: the mask artifact belongs to another dataset")
    settings = config["training"]
    device = resolve_device(settings["device"])
    X = torch.as_tensor(dataset.X_train, device=device)
    y = torch.as_tensor(dataset.y_train, device=device)
    X_query = torch.as_tensor(dataset.X_query, device=device)
    dataset_fp = dataset.fingerprint()
    train_seconds = 0.0
    for index in indices:
        t0 = time.perf_counter()
        rows = torch.as_tensor(np.flatnonzero(masks.mask(index)), device=device)
        fingerprint = provenance.submodel_fingerprint(config, dataset_fp, masks, index)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            seed = fingerprint["seed"] + (attempt - 1) * 1_000_003
            model = fit_submodel(X, y, rows, dataset.n_classes, settings, seed)
            with torch.no_grad():
                logits = model.eval()(X_query).float().cpu().numpy()
            if np.isfinite(logits).all():
                status = "ok"
                break
            status = "diverged"
            log.warning("subset %d: non-finite outputs with seed %d (attempt %d)", index, seed,
                        attempt)
        if settings["save_weights"]:
            from safetensors.torch import save_file

            with atomic_path(submodel_path(out_dir, index, ".safetensors")) as tmp:
                save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                          str(tmp))
        record = {**fingerprint, "status": status, "attempts": attempt, "trained_seed": seed}
        atomic_savez(submodel_path(out_dir, index), logits=logits,
                     fingerprint=provenance.encode(record))
        train_seconds += time.perf_counter() - t0
        log.info("subset %d: p=%.3f, %d points, %s in %.3fs", index, masks.p[index], len(rows),
                 status, time.perf_counter() - t0)
    return {"n_subsets": len(indices), "train_seconds": train_seconds,
            "job_seconds": time.perf_counter() - started}
