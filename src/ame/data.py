"""Datasets: the bundled digits backdoor scenario, user ``.npz`` files and the paper's CIFAR-10
backdoor (``ame.cifar``), in one prepared format.

The prepared dataset holds training points, query points (the inputs whose behaviour we explain)
and, when known, the ground-truth indices of the training points that should matter. Ground truth
is written here for evaluation only; nothing in sampling, training or estimation reads it.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ame.store import ArtifactError, atomic_savez, load_npz

NPZ_REQUIRED = ("X_train", "y_train", "X_query")
NPZ_OPTIONAL = ("y_query", "ground_truth", "source")


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
        arrays = load_npz(path, required=(*NPZ_REQUIRED, "y_query", "meta"))
        return cls(
            arrays["X_train"],
            arrays["y_train"],
            arrays["X_query"],
            arrays["y_query"],
            arrays.get("ground_truth"),
            json.loads(str(arrays["meta"])),
            arrays.get("source"),
        )


def apply_trigger(images: np.ndarray, size: int, value: float) -> np.ndarray:
    """Stamp a ``size`` x ``size`` square of intensity ``value`` in the bottom-right corner."""
    out = images.copy()
    out[..., -size:, -size:] = value
    return out


def split_digits(seed: int, test_fraction: float):
    """Stratified train/test split of scikit-learn's bundled digits, scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    return train_test_split(
        images,
        digits.target.astype(np.int64),
        test_size=test_fraction,
        random_state=seed,
        stratify=digits.target,
    )


def digits_backdoor(
    seed: int = 0,
    test_fraction: float = 0.2,
    n_poisons: int = 30,
    target_class: int = 0,
    trigger_size: int = 2,
    trigger_value: float = 1.0,
) -> Dataset:
    """Backdoor scenario on digits: poisoned training images carry a trigger and the target label.

    Queries are the triggered test images of the other classes, in a seeded random order; their
    behaviour is the probability of ``target_class``. Poisons are drawn from non-target images.
    """
    X_train, X_test, y_train, y_test = split_digits(seed, test_fraction)
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(y_train != target_class)
    if n_poisons > len(candidates):
        raise ValueError(
            f"dataset.n_poisons: {n_poisons} exceeds the {len(candidates)} "
            "training images outside the target class"
        )
    poisons = np.sort(rng.choice(candidates, size=n_poisons, replace=False))
    X_train[poisons] = apply_trigger(X_train[poisons], trigger_size, trigger_value)
    y_train[poisons] = target_class
    others = rng.permutation(np.flatnonzero(y_test != target_class))
    X_query = apply_trigger(X_test[others], trigger_size, trigger_value)
    y_query = np.full(len(others), target_class, dtype=np.int64)
    meta = {
        "name": "digits",
        "n_classes": 10,
        "input_shape": [8, 8],
        "target_class": target_class,
        "query_source": "triggered test images of the other classes",
        "query_test_indices": others.tolist(),
    }
    return Dataset(X_train, y_train, X_query, y_query, poisons.astype(np.int64), meta)


def synthetic_sources(
    n_points: int, poisons: np.ndarray, n_sources: int, n_poisoned_sources: int, seed: int
) -> np.ndarray:
    """Group the training points into ``n_sources`` contributors of (nearly) equal size.

    The poisons are dealt round-robin to ``n_poisoned_sources`` random contributors, which are
    then filled up with clean points like the others: poisoned contributors hold clean points too.
    """
    if not 1 <= n_poisoned_sources <= min(n_sources, len(poisons)):
        raise ValueError(
            f"dataset.n_poisoned_sources: {n_poisoned_sources} must lie in "
            f"[1, min(n_sources, n_poisons)] = [1, {min(n_sources, len(poisons))}]"
        )
    if n_sources > n_points // 2:
        raise ValueError(
            f"dataset.n_sources: {n_sources} sources need at least 2 points each "
            f"({n_points} training points)"
        )
    rng = np.random.default_rng([seed, 1])
    sizes = np.full(n_sources, n_points // n_sources)
    sizes[: n_points % n_sources] += 1
    poisoned = rng.choice(n_sources, size=n_poisoned_sources, replace=False)
    if len(poisons) > sizes[poisoned].sum():
        raise ValueError(
            f"dataset.n_poisoned_sources: {n_poisoned_sources} sources of about "
            f"{n_points // n_sources} points cannot hold {len(poisons)} poisons"
        )
    source = np.full(n_points, -1, dtype=np.int64)
    source[rng.permutation(poisons)] = np.resize(poisoned, len(poisons))
    room = sizes - np.bincount(source[source >= 0], minlength=n_sources)
    clean = rng.permutation(np.flatnonzero(source < 0))
    source[clean] = np.repeat(np.arange(n_sources), room)
    return source


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
    arrays = load_npz(path, required=NPZ_REQUIRED)
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


def build(config: dict) -> Dataset:
    """The dataset named by the ``dataset`` section of the params."""
    d = config["dataset"]
    if d["name"] == "npz":
        return load_user_npz(d["path"])
    if d["name"] == "digits":
        dataset = digits_backdoor(
            d["seed"],
            d["test_fraction"],
            d["n_poisons"],
            d["target_class"],
            d["trigger_size"],
            d["trigger_value"],
        )
    else:
        from ame import cifar  # imports this module

        dataset = cifar.build(d)
    if d["n_sources"] is not None:
        dataset.source = synthetic_sources(
            dataset.n_points,
            dataset.ground_truth,
            d["n_sources"],
            d["n_poisoned_sources"],
            d["seed"],
        )
        dataset.meta["sources"] = "synthetic contributors (dataset.n_sources)"
    return dataset


def n_sources(config: dict) -> int:
    """Number of sources without preparing the data (0: the dataset has no source labels)."""
    d = config["dataset"]
    if d["name"] != "npz":
        return d["n_sources"] or 0
    path = Path(d["path"])
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return len(np.unique(arrays["source"])) if "source" in arrays.files else 0
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ArtifactError(f"{path}: cannot read the source labels ({err})") from err


def n_training_points(config: dict) -> int:
    """N without preparing the data: the workflow needs it to lay out the jobs."""
    d = config["dataset"]
    if d["name"] == "digits":
        return len(split_digits(d["seed"], d["test_fraction"])[2])
    if d["name"] == "cifar10":
        from ame import cifar

        return cifar.n_training_points(d)
    path = Path(d["path"])
    if not path.is_file():
        raise ArtifactError(f"dataset.path: {path} not found")
    return _npz_header_shape(path, "y_train")[0]
