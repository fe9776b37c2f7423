"""The paper's CIFAR-10 backdoor scenario, from the python-version batches on local disk.

Input: ``dataset.path``, the directory of ``data_batch_1`` ... ``data_batch_5`` and ``test_batch``
as unpacked from ``cifar-10-python.tar.gz`` (a directory holding ``cifar-10-batches-py`` works
too). Nothing is downloaded.

The scenario follows the authors' ``gen_data.py`` (Lin et al. 2022; docs/method.md, section 6):

* one ``random.Random(seed)`` shuffles the training images, then the test images (Python's
  generator, as the authors' code, so seed 0 gives their poisons);
* the first 50 shuffled training images are the poison pool: the first ``n_poisons`` get a
  ``trigger_size`` square in the top-left corner (red channel ``trigger_value`` x 255, green and
  blue 0) and the label ``target_class``; the rest of the pool is dropped (CIFAR10-20: N = 49,970);
* queries: the first 20 images of the first half of the shuffled test set whose class is not
  ``target_class``, triggered; their behaviour is the probability of ``target_class``. (The
  authors hand-picked 20 indices of that list; we take its head.) The second half of the shuffled
  test set is the clean evaluation set (:func:`evaluation_sets`).

Training images keep the CIFAR-10 order (batches 1 to 5), less the dropped ones, so the poisons
sit at their own positions, not first. Images stay uint8 of shape (3, 32, 32); training scales
them to [0, 1] on the device.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import random
from pathlib import Path

import numpy as np

from ame.artifacts import ArtifactError, atomic_write_json
from ame.data.dataset import Dataset
from ame.errors import UserError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
IMAGE_SHAPE = (3, 32, 32)
N_CLASSES = 10
POISON_POOL = 50  # the first 50 shuffled training images (the paper's CIFAR10-50)
N_QUERIES = 20

try:  # numpy >= 2
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct


class _BatchUnpickler(pickle.Unpickler):
    """Reads CIFAR-10 batches only: dicts, lists, strings, bytes, numbers and numpy arrays.

    The batches are pickles by format. Unpickling runs any callable a file names, so this
    unpickler resolves only the three names a numpy array needs and refuses every other global:
    a crafted file cannot run code. It is used for the user's raw CIFAR-10 directory alone; our
    own artifacts are ``.npz`` files read without pickle (``ame.artifacts``).
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR-10 batch")
        return self.ALLOWED[(module, name)]


def batch_directory(path: str | Path) -> Path:
    """The directory holding the batch files: ``path`` or its ``cifar-10-batches-py``."""
    root = Path(path)
    if not root.is_dir():
        raise ArtifactError(
            f"dataset.path: CIFAR-10 directory {root} not found (give the unpacked "
            "cifar-10-batches-py directory of the python version; nothing is downloaded)"
        )
    nested = root / "cifar-10-batches-py"
    if not (root / TEST_BATCH).exists() and nested.is_dir():
        return nested
    return root


def read_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images of shape (n, 3, 32, 32), uint8, and labels (n,), int64, of one batch file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: CIFAR-10 batch file not found")
    try:
        with open(path, "rb") as fh:
            # latin1: the original batches were pickled by Python 2 (as torchvision reads them)
            content = _BatchUnpickler(fh, encoding="latin1").load()
    except Exception as err:  # any parse failure of a foreign file is the same user error
        raise ArtifactError(f"{path}: not a CIFAR-10 python batch ({err})") from err
    if not isinstance(content, dict):
        raise ArtifactError(f"{path}: not a CIFAR-10 python batch (holds {type(content).__name__})")
    data = content.get("data", content.get(b"data"))
    labels = content.get("labels", content.get(b"labels"))
    n_values = int(np.prod(IMAGE_SHAPE))
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[1] == n_values
    ):
        raise ArtifactError(f"{path}: 'data' must be a uint8 array of shape (n, {n_values})")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as err:
        raise ArtifactError(f"{path}: 'labels' must be a list of class numbers") from err
    if (
        labels.shape != (len(data),)
        or labels.min(initial=0) < 0
        or labels.max(initial=0) >= N_CLASSES
    ):
        raise ArtifactError(f"{path}: 'labels' must hold one class in [0, {N_CLASSES}) per image")
    return data.reshape(-1, *IMAGE_SHAPE), labels


def load_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """X_train, y_train (batches 1 to 5 in order), X_test, y_test of a CIFAR-10 directory."""
    root = batch_directory(path)
    train = [read_batch(root / name) for name in TRAIN_BATCHES]
    X_test, y_test = read_batch(root / TEST_BATCH)
    return (
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        X_test,
        y_test,
    )


def shuffled_orders(n_train: int, n_test: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The authors' shuffles: one Python generator, training images first, then test images."""
    rng = random.Random(seed)
    train, test = list(range(n_train)), list(range(n_test))
    rng.shuffle(train)
    rng.shuffle(test)
    return np.array(train, dtype=np.int64), np.array(test, dtype=np.int64)


def apply_trigger(images: np.ndarray, size: int, value: float) -> np.ndarray:
    """Stamp a red ``size`` x ``size`` square (red = round(255 value), green = blue = 0) in the
    top-left corner of uint8 images of shape (n, 3, H, W)."""
    out = images.copy()
    out[:, 0, :size, :size] = round(255 * value)
    out[:, 1:, :size, :size] = 0
    return out


def _check_poisons(n_poisons: int) -> None:
    if not 1 <= n_poisons <= POISON_POOL:
        raise UserError(
            f"dataset.n_poisons: cifar10 poisons come from the first {POISON_POOL} "
            f"shuffled training images (1 to {POISON_POOL}), got {n_poisons}"
        )


def backdoor(
    X_train,
    y_train,
    X_test,
    y_test,
    seed: int = 0,
    n_poisons: int = 20,
    target_class: int = 1,
    trigger_size: int = 5,
    trigger_value: float = 1.0,
) -> Dataset:
    """The backdoor scenario from CIFAR-10 arrays (see the module docstring)."""
    _check_poisons(n_poisons)
    if not 0 < trigger_value <= 1:
        raise UserError(
            f"dataset.trigger_value: the red intensity of the cifar10 trigger must lie "
            f"in (0, 1], got {trigger_value}"
        )
    if len(y_train) < POISON_POOL:
        raise UserError(
            f"dataset: {len(y_train)} training images, fewer than the poison pool of {POISON_POOL}"
        )
    train_order, test_order = shuffled_orders(len(y_train), len(y_test), seed)
    poisons, dropped = train_order[:n_poisons], train_order[n_poisons:POISON_POOL]
    kept = np.delete(np.arange(len(y_train)), dropped)
    X, y = X_train[kept], y_train[kept].copy()
    ground_truth = np.searchsorted(kept, np.sort(poisons))
    X[ground_truth] = apply_trigger(X[ground_truth], trigger_size, trigger_value)
    y[ground_truth] = target_class
    first_half = test_order[: len(test_order) // 2]
    candidates = first_half[y_test[first_half] != target_class]
    if len(candidates) < N_QUERIES:
        raise UserError(
            f"dataset: only {len(candidates)} test images outside class "
            f"{target_class} in the first half of the shuffled test set; "
            f"{N_QUERIES} queries are needed"
        )
    queries = candidates[:N_QUERIES]
    meta = {
        "name": "cifar10",
        "n_classes": N_CLASSES,
        "input_shape": list(IMAGE_SHAPE),
        "target_class": target_class,
        "train_order": "CIFAR-10 training batches 1-5 in order, less dropped_source_indices",
        "poison_source_indices": np.sort(poisons).tolist(),
        "dropped_source_indices": np.sort(dropped).tolist(),
        "query_source": "triggered test images of the other classes (first half of the shuffle)",
        "query_test_indices": queries.tolist(),
    }
    return Dataset(
        X,
        y,
        apply_trigger(X_test[queries], trigger_size, trigger_value),
        np.full(N_QUERIES, target_class, dtype=np.int64),
        ground_truth.astype(np.int64),
        meta,
    )


def evaluation_sets(
    X_test,
    y_test,
    n_train: int,
    seed: int,
    target_class: int,
    trigger_size: int,
    trigger_value: float,
):
    """Full-model checks of the authors' code: (X_clean, y_clean), the second half of the
    shuffled test set; X_triggered, the triggered images of the first half outside
    ``target_class`` (attack success = share classified as ``target_class``)."""
    _, test_order = shuffled_orders(n_train, len(y_test), seed)
    half = len(test_order) // 2
    clean = test_order[half:]
    triggered = test_order[:half][y_test[test_order[:half]] != target_class]
    return (
        X_test[clean],
        y_test[clean],
        apply_trigger(X_test[triggered], trigger_size, trigger_value),
    )


def build(d: dict) -> Dataset:
    """The scenario named by a ``dataset`` params section with ``name: cifar10``."""
    X_train, y_train, X_test, y_test = load_cifar10(d["path"])
    return backdoor(
        X_train,
        y_train,
        X_test,
        y_test,
        d["seed"],
        d["n_poisons"],
        d["target_class"],
        d["trigger_size"],
        d["trigger_value"],
    )


#: Image counts of batch files already read, by (path, size, mtime): the workflow describes the
#: dataset at every start, and unpickling 150 MB of batches each time would cost seconds.
SIZE_CACHE = Path(".snakemake/ame/cifar10-batch-sizes.json")


def _n_images(root: Path) -> int:
    files = [root / name for name in TRAIN_BATCHES]
    for path in files:
        if not path.is_file():
            raise ArtifactError(f"dataset.path: {path} not found")
    key = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    try:
        cached = json.loads(SIZE_CACHE.read_text())
    except (OSError, ValueError):
        cached = {}
    if key not in cached:
        cached = {key: sum(len(read_batch(path)[1]) for path in files)}
        with contextlib.suppress(OSError):  # a read-only directory only loses the cache
            atomic_write_json(SIZE_CACHE, cached)
    return int(cached[key])


def describe(d: dict) -> dict:
    """Sizes of the scenario (reads the training batches once: a broken file fails early)."""
    _check_poisons(d["n_poisons"])
    n_images = _n_images(batch_directory(d["path"]))
    return {
        "n_points": n_images - (POISON_POOL - d["n_poisons"]),
        "n_query_points": N_QUERIES,
        "n_sources": d["n_sources"] or 0,
        "has_classes": True,
    }


def synthetic_arrays(n_train: int = 50_000, n_test: int = 10_000, seed: int = 0):
    """CIFAR-10-shaped random data (uint8 images whose mean colour depends on the class), for
    tests and timing where the real images are not at hand. Accuracy on it means nothing."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(40, 216, size=(N_CLASSES, 3, 1, 1))

    def draw(n):
        labels = rng.integers(0, N_CLASSES, n)
        noise = rng.integers(-40, 41, size=(n, *IMAGE_SHAPE))
        return np.clip(palette[labels] + noise, 0, 255).astype(np.uint8), labels.astype(np.int64)

    return (*draw(n_train), *draw(n_test))


def write_synthetic(
    directory: str | Path, n_per_batch: int = 20, n_test: int = 100, seed: int = 0
) -> Path:
    """Write a tiny CIFAR-10-format directory (five training batches and a test batch)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    X_train, y_train, X_test, y_test = synthetic_arrays(5 * n_per_batch, n_test, seed)
    parts = [
        (name, slice(i * n_per_batch, (i + 1) * n_per_batch))
        for i, name in enumerate(TRAIN_BATCHES)
    ]
    for name, images, labels in [(n, X_train[s], y_train[s]) for n, s in parts] + [
        (TEST_BATCH, X_test, y_test)
    ]:
        content = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": images.reshape(len(images), -1),
        }
        with open(directory / name, "wb") as fh:
            pickle.dump(content, fh, protocol=4)
    return directory
