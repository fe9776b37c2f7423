"""Training submodels on subsets: one subset at a time, or a pack of consecutive subsets per job.

Every submodel gets the same number of optimizer steps whatever its subset size, so small subsets
converge too, and writes its raw logits on every query point: new behaviours need no retraining;
with ``training.training_points``, on every training point too.
How one submodel is trained lives in ``ame.training.fit``; with ``training.vectorize`` the small
models of a job are trained together by ``ame.training.vectorized`` (same models, same files,
faster). Files are the submodel store's business (``ame.pipeline.submodels``).
"""

from __future__ import annotations

import logging
import time

import numpy as np

from ame.data import Dataset
from ame.data.plugin import PluginError
from ame.errors import UserError
from ame.pipeline import provenance
from ame.pipeline.submodels import SubmodelStore
from ame.sampling import MaskSet
from ame.training.plugin import TrainingRaised

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 2  # a diverged submodel is retrained once with another seed, then excluded
RETRY_SEED_STEP = 1_000_003  # attempt k trains with seed + (k - 1) * RETRY_SEED_STEP


def train_subsets(
    trainer,
    dataset: Dataset,
    masks: MaskSet,
    indices: range,
    config: dict,
    store: SubmodelStore,
) -> dict:
    """Train the submodels of ``indices`` with ``trainer`` (the scenario's:
    ``ame.scenarios.Scenario.trainer``) and write one output file per subset to ``store``.

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
    dataset_fp = dataset.fingerprint()
    train_seconds = 0.0
    for first in range(indices.start, indices.stop, trainer.chunk):
        t0 = time.perf_counter()
        block = range(first, min(first + trainer.chunk, indices.stop))
        results = _train_block(trainer, masks, block, config, dataset_fp)
        share = (time.perf_counter() - t0) / len(block)
        for index, (fitted, status, attempt, seed, fingerprint) in results.items():
            outputs, weights, on_training = fitted
            store.write(
                index,
                outputs,
                provenance.submodel_record(fingerprint, status, attempt, seed),
                weights,
                on_training,
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


def _train_block(trainer, masks: MaskSet, block: range, config: dict, dataset_fp: str) -> dict:
    """Train the subsets of ``block`` (together when the trainer vectorizes).

    A submodel with non-finite outputs is retrained once with another seed, then recorded as
    diverged (gather excludes and counts it). A plug-in whose code raises is retried once with
    another seed; if it raises again the job stops with one line naming the plug-in and the
    subset (packs already written are kept). Returns, per subset index: ((outputs, weights,
    training-point outputs), status, attempts, trained seed, fingerprint).
    """
    rows = {i: np.flatnonzero(masks.point_mask(i)) for i in block}
    fingerprints = {i: provenance.submodel_fingerprint(config, dataset_fp, masks, i) for i in block}
    results, pending = {}, list(block)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        seeds = [fingerprints[i]["seed"] + (attempt - 1) * RETRY_SEED_STEP for i in pending]
        try:
            fitted = trainer.fit([rows[i] for i in pending], seeds, pending)
        except TrainingRaised as raised:
            if attempt == MAX_ATTEMPTS:
                raise PluginError(
                    f"plugin {trainer.spec}: train raised on subset {raised.subset} "
                    f"(seeds {fingerprints[raised.subset]['seed']} and "
                    f"{fingerprints[raised.subset]['seed'] + RETRY_SEED_STEP}): "
                    f"{type(raised.error).__name__}: {raised.error}"
                ) from raised.error
            log.warning("%s (attempt %d); retrying with another seed", raised, attempt)
            continue
        diverged = []
        for index, seed, outputs in zip(pending, seeds, fitted, strict=True):
            finite = all(np.isfinite(o).all() for o in (outputs[0], outputs[2]) if o is not None)
            status = "ok" if finite else "diverged"
            results[index] = (outputs, status, attempt, seed, fingerprints[index])
            if status == "diverged":
                log.warning(
                    "subset %d: non-finite outputs with seed %d (attempt %d)", index, seed, attempt
                )
                diverged.append(index)
        pending = diverged
        if not pending:
            break
    return {i: results[i] for i in block}
