"""The prepared dataset: one format for every scenario (``ame.data.digits``, ``npz``, ``cifar10``).

It holds training points, query points (the inputs whose behaviour we explain)
and, when known, the ground-truth indices of the training points that should matter. Ground truth
is written here for evaluation only; nothing in sampling, training or estimation reads it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ame.artifacts import atomic_savez, load_npz

ARRAYS = ("X_train", "y_train", "X_query", "y_query")


@dataclass
class Dataset:
    """Training and query arrays of one scenario, plus metadata and optional ground truth.

    Attributes
    ----------
    X_train : ndarray of shape (n_points, *input_shape)
    y_train : ndarray of int64, shape (n_points,)
    X_query : ndarray of shape (n_query_points, *input_shape)
    y_query : ndarray of int64, shape (n_query_points,)
        The class whose behaviour is measured on each query (the backdoor's target class).
    ground_truth : ndarray of int64 or None
        Indices of the training points known to drive the queries (poisons); evaluation only.
    source : ndarray of int64 or None
        Source (contributor) of each training point, numbered 0 .. n_sources - 1; its names, when
        the file gave names, are in ``meta["source_names"]``.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_query: np.ndarray
    y_query: np.ndarray
    ground_truth: np.ndarray | None = None
    meta: dict = field(default_factory=dict)
    source: np.ndarray | None = None

    @property
    def n_points(self) -> int:
        return len(self.y_train)

    @property
    def n_sources(self) -> int:
        return 0 if self.source is None else int(self.source.max()) + 1

    def source_truth(self) -> np.ndarray | None:
        """Sources holding at least one ground-truth point (evaluation only)."""
        if self.ground_truth is None or self.source is None:
            return None
        return np.unique(self.source[self.ground_truth])

    @property
    def n_classes(self) -> int:
        return int(self.meta.get("n_classes", int(self.y_train.max()) + 1))

    def fingerprint(self) -> str:
        """Content hash of every array: submodels record it so stale data cannot go unnoticed."""
        h = hashlib.sha256()
        for arr in (self.X_train, self.y_train, self.X_query, self.y_query):
            h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()

    def save(self, path: str | Path) -> None:
        arrays = {
            "X_train": self.X_train,
            "y_train": self.y_train,
            "X_query": self.X_query,
            "y_query": self.y_query,
            "meta": np.array(json.dumps(self.meta)),
        }
        if self.ground_truth is not None:
            arrays["ground_truth"] = self.ground_truth
        if self.source is not None:
            arrays["source"] = self.source
        atomic_savez(path, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Dataset:
        arrays = load_npz(path, required=(*ARRAYS, "meta"))
        return cls(
            arrays["X_train"],
            arrays["y_train"],
            arrays["X_query"],
            arrays["y_query"],
            arrays.get("ground_truth"),
            json.loads(str(arrays["meta"])),
            arrays.get("source"),
        )
