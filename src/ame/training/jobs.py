"""Training submodels on subsets: one subset at a time, or a pack of consecutive subsets per job.

Every submodel gets the same number of optimizer steps whatever its subset size, so small subsets
converge too, and writes its raw logits on every query point: new behaviours need no retraining.
How one submodel is trained lives in ``ame.training.fit``; with ``training.vectorize`` the small
models of a job are trained together by ``ame.training.vectorized`` (same models, same files,
faster). Files are the submodel store's business (``ame.pipeline.submodels``).
"""

from __future__ import annotations

import logging
import time

import numpy as np
import torch

from ame.data import Dataset
from ame.errors import UserError
from ame.pipeline import provenance
from ame.pipeline.submodels import SubmodelStore
from ame.sampling import MaskSet
from ame.training import vectorized
from ame.training.fit import configure_backends, fit_submodel, predict

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 2  # a diverged submodel is retrained once with another seed, then excluded


def resolve_device(name: str) -> torch.device:
    """``auto`` takes the first visible CUDA device (respecting CUDA_VISIBLE_DEVICES), else CPU."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("training.device: cuda requested but no CUDA device is visible")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def train_subsets(
    dataset: Dataset, masks: MaskSet, indices: range, config: dict, store: SubmodelStore
) -> dict:
    """Train the submodels of ``indices`` and write one output file per subset to ``store``.

    Returns timing figures (seconds) for the overhead benchmark.
    """
    started = time.perf_counter()
    if indices.stop > masks.n_subsets:
        raise UserError(
            f"subset {indices.stop - 1} is beyond the {masks.n_subsets} subsets of "
            "the mask artifact"
        )
    if masks.n_points != dataset.n_points:
        raise UserError(
            f"masks cover {masks.n_points} points but the dataset has "
            f"{dataset.n_points}: the mask artifact belongs to another dataset"
        )
    settings = config["training"]
    device = resolve_device(settings["device"])
    configure_backends(settings, device)
    X = torch.as_tensor(dataset.X_train, device=device)
    y = torch.as_tensor(dataset.y_train, device=device)
    X_query = torch.as_tensor(dataset.X_query, device=device)
    dataset_fp = dataset.fingerprint()
    train_seconds = 0.0
    chunk = vectorized.CHUNK if settings["vectorize"] else 1
    for first in range(indices.start, indices.stop, chunk):
        t0 = time.perf_counter()
        block = range(first, min(first + chunk, indices.stop))
        results = _train_block(X, y, X_query, dataset, masks, block, config, dataset_fp)
        share = (time.perf_counter() - t0) / len(block)
        for index, (model, logits, status, attempt, seed, fingerprint) in results.items():
            weights = None
            if settings["save_weights"]:
                weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            store.write(
                index,
                logits,
                provenance.submodel_record(fingerprint, status, attempt, seed),
                weights,
            )
            log.info(
                "subset %d: p=%.3f, %d points, %s in %.3fs",
                index,
                masks.p[index],
                int(masks.point_mask(index).sum()),
                status,
                share,
            )
        train_seconds += time.perf_counter() - t0
    return {
        "n_subsets": len(indices),
        "train_seconds": train_seconds,
        "job_seconds": time.perf_counter() - started,
    }


def _train_block(
    X, y, X_query, dataset: Dataset, masks: MaskSet, block: range, config: dict, dataset_fp: str
) -> dict:
    """Train the subsets of ``block`` (together when vectorized); a diverged one is retried once.

    Returns, per subset index: (model, query logits, status, attempts, trained seed, fingerprint).
    """
    settings = config["training"]
    rows = {i: torch.as_tensor(np.flatnonzero(masks.point_mask(i)), device=X.device) for i in block}
    fingerprints = {i: provenance.submodel_fingerprint(config, dataset_fp, masks, i) for i in block}
    results, pending = {}, list(block)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        seeds = [fingerprints[i]["seed"] + (attempt - 1) * 1_000_003 for i in pending]
        row_sets = [rows[i] for i in pending]
        if settings["vectorize"]:
            models = vectorized.fit_submodels(X, y, row_sets, dataset.n_classes, settings, seeds)
        else:
            models = [
                fit_submodel(X, y, r, dataset.n_classes, settings, seed)
                for r, seed in zip(row_sets, seeds, strict=True)
            ]
        diverged = []
        for index, seed, model in zip(pending, seeds, models, strict=True):
            logits = predict(model, X_query, settings)
            status = "ok" if np.isfinite(logits).all() else "diverged"
            results[index] = (model, logits, status, attempt, seed, fingerprints[index])
            if status == "diverged":
                log.warning(
                    "subset %d: non-finite outputs with seed %d (attempt %d)", index, seed, attempt
                )
                diverged.append(index)
        pending = diverged
        if not pending:
            break
    return {i: results[i] for i in block}
