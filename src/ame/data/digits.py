"""The bundled default scenario: a backdoor planted in scikit-learn's digits
(docs/tutorials/default-study.md). Poisoned training images carry a bottom-right trigger and the
target label; the queries are the triggered test images of the other classes.
"""

from __future__ import annotations

import numpy as np

from ame.data.dataset import Dataset
from ame.errors import UserError


def describe(d: dict) -> dict:
    """Sizes without building the data: the split alone (cheap)."""
    _, _, y_train, y_test = split_digits(d["seed"], d["test_fraction"])
    return {
        "n_points": len(y_train),
        "n_query_points": int((y_test != d["target_class"]).sum()),
        "n_sources": d["n_sources"] or 0,
        "has_classes": True,
    }


def build(d: dict) -> Dataset:
    return digits_backdoor(
        d["seed"],
        d["test_fraction"],
        d["n_poisons"],
        d["target_class"],
        d["trigger_size"],
        d["trigger_value"],
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
        raise UserError(
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
