"""Mislabel detection with scikit-learn, no torch: which training labels hurt a classifier?

The plug-in contract of `ame` (docs/tutorials/plugin.md): `describe(options)` says what
the experiment is, `train(indices, seed, device, options)` trains on a subset and returns the
outputs on every query. Here: scikit-learn's bundled breast-cancer data, a stratified 70/30
split, 10 % of the training labels flipped (the ground truth, used only to evaluate), a logistic
regression, and the log-probability of each held-out point's true class. The aggregate query
(the mean over the held-out points) is the clean held-out log-likelihood; the points whose
presence lowers it are the ones to look at (`estimation.direction: negative`).
"""

from functools import lru_cache

import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


@lru_cache(maxsize=4)
def _data(seed: int, flip_fraction: float, test_fraction: float):
    X, y = load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    rng = np.random.default_rng(seed)
    flipped = np.sort(
        rng.choice(len(y_train), size=round(flip_fraction * len(y_train)), replace=False)
    )
    noisy = y_train.copy()
    noisy[flipped] = 1 - noisy[flipped]
    return scaler.transform(X_train), noisy, scaler.transform(X_test), y_test, flipped


def _load(options: dict):
    return _data(options["seed"], options["flip_fraction"], options["test_fraction"])


def describe(options: dict) -> dict:
    X_train, y_train, X_test, y_test, flipped = _load(options)
    return {
        "n_points": len(y_train),
        "queries": [f"heldout_{i}" for i in range(len(y_test))],
        "n_outputs": 2,  # log-probabilities of the two classes
        "classes": y_test,  # the behaviour: log-probability of each held-out point's true class
        "ground_truth": flipped,  # evaluation only: never seen by sampling or estimation
        "labels": y_train,
    }


def train(indices, seed, device, options):
    X_train, y_train, X_test, _, _ = _load(options)
    labels = y_train[indices]
    if len(np.unique(labels)) < 2:  # a one-class subset: predict its class frequency
        prior = np.full(2, 1e-6)
        prior[labels[0] if len(labels) else 0] = 1.0
        return np.tile(np.log(prior / prior.sum()), (len(X_test), 1))
    model = LogisticRegression(C=options["C"], max_iter=1000, random_state=seed)
    return model.fit(X_train[indices], labels).predict_log_proba(X_test)
