"""A user's dataset as one ``.npz`` file: ``X_train``, ``y_train``, ``X_query``, ``y_query`` and,
optionally, ``ground_truth`` (evaluation only) and ``source`` (one contributor label per point).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ame.artifacts import ArtifactError, load_npz
from ame.data.dataset import Dataset

REQUIRED = ("X_train", "y_train", "X_query")


def describe(d: dict) -> dict:
    """Sizes from the array headers only (cheap at DAG-build time)."""
    path = Path(d["path"])
    if not path.is_file():
        raise ArtifactError(f"dataset.path: {path} not found")
    return {
        "n_points": _npz_header_shape(path, "y_train")[0],
        "n_query_points": _npz_header_shape(path, "X_query")[0],
        "n_sources": _n_sources(path),
        "has_classes": True,
    }


def build(d: dict) -> Dataset:
    return load_user_npz(d["path"])


def _n_sources(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return len(np.unique(arrays["source"])) if "source" in arrays.files else 0
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ArtifactError(f"{path}: cannot read the source labels ({err})") from err


def _npz_header_shape(path: Path, key: str) -> tuple[int, ...]:
    """Shape of one array of an ``.npz`` without reading its data (cheap at DAG-build time)."""
    try:
        with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if major == 1
                else np.lib.format.read_array_header_2_0
            )
            shape, _, _ = read_header(fh)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError) as err:
        raise ArtifactError(f"{path}: cannot read array {key!r} ({err})") from err
    return shape


def load_user_npz(path: str | Path) -> Dataset:
    """Read and check a user dataset: X_train, y_train, X_query, optional y_query, ground_truth."""
    path = Path(path)
    arrays = load_npz(path, required=REQUIRED)
    X_train, y_train, X_query = arrays["X_train"], arrays["y_train"], arrays["X_query"]
    if X_train.ndim < 2 or y_train.ndim != 1 or len(X_train) != len(y_train):
        raise ArtifactError(
            f"{path}: X_train {X_train.shape} and y_train {y_train.shape} must "
            "hold one label per training row"
        )
    if X_query.shape[1:] != X_train.shape[1:]:
        raise ArtifactError(
            f"{path}: X_query rows {X_query.shape[1:]} differ from X_train rows {X_train.shape[1:]}"
        )
    if not np.issubdtype(y_train.dtype, np.integer) or y_train.min() < 0:
        raise ArtifactError(f"{path}: y_train must hold non-negative integer class labels")
    for name, arr in (("X_train", X_train), ("X_query", X_query)):
        if not np.isfinite(arr).all():
            raise ArtifactError(f"{path}: {name} contains NaN or infinite values")
    n_classes = int(y_train.max()) + 1
    if "y_query" in arrays:
        y_query = arrays["y_query"]
        if y_query.shape != (len(X_query),) or y_query.min() < 0 or y_query.max() >= n_classes:
            raise ArtifactError(
                f"{path}: y_query must hold one class in [0, {n_classes}) per query row"
            )
    else:
        raise ArtifactError(
            f"{path}: y_query is missing: give the class whose probability is "
            "measured on each query"
        )
    source, source_names = None, None
    if "source" in arrays:
        labels = arrays["source"]
        if labels.shape != (len(y_train),):
            raise ArtifactError(
                f"{path}: source must hold one label per training row, got shape {labels.shape}"
            )
        names, source = np.unique(labels, return_inverse=True)
        source, source_names = source.astype(np.int64), [str(n) for n in names]
    ground_truth = arrays.get("ground_truth")
    if ground_truth is not None:
        ground_truth = np.asarray(ground_truth, dtype=np.int64).ravel()
        bad = ground_truth[(ground_truth < 0) | (ground_truth >= len(y_train))]
        if bad.size:
            raise ArtifactError(
                f"{path}: ground_truth index {int(bad[0])} is outside [0, {len(y_train)})"
            )
    meta = {
        "name": "npz",
        "source": str(path),
        "n_classes": n_classes,
        "input_shape": list(X_train.shape[1:]),
    }
    if source_names is not None:
        meta["source_names"] = source_names
    return Dataset(
        X_train.astype(np.float32),
        y_train.astype(np.int64),
        X_query.astype(np.float32),
        y_query.astype(np.int64),
        ground_truth,
        meta,
        source,
    )
