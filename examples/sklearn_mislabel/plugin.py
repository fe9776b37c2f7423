"""Mislabel detection with scikit-learn, no torch: which training labels hurt a classifier?

The plug-in contract of `ame` (docs/tutorials/plugin.md): `describe(options)` says what
the experiment is, `train(indices, seed, device, options)` trains on a subset and returns the
outputs on every query. Here: scikit-learn's bundled breast-cancer data (or, with
`options.data: digits`, its 8x8 digits), a stratified split, 10 % of the training labels flipped
to another class (the ground truth, used only to evaluate), a logistic regression (or, with
`options.model: knn`, a k-nearest-neighbour classifier), and the log-probability of each
held-out point's true class. The aggregate query (the mean over the
held-out points) is the clean held-out log-likelihood; the points whose presence lowers it are
the ones to look at (`estimation.direction: negative`).

`training_outputs`: `train` also returns the log-probabilities of every training point, so the
same submodels give each training point's out-of-subset value and a relabel list at the FDR,
calibrated on the held-out points (`training.training_points`, docs/how-to/mislabels.md).
"""

from functools import lru_cache

import numpy as np
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler

FLOOR = 1e-6  # smallest probability: a log-probability stays finite (a class the subset lacks)


DATA = {"breast_cancer": load_breast_cancer, "digits": load_digits}


@lru_cache(maxsize=4)
def _data(data: str, seed: int, flip_fraction: float, test_fraction: float):
    X, y = DATA[data](return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    rng = np.random.default_rng(seed)
    flipped = np.sort(
        rng.choice(len(y_train), size=round(flip_fraction * len(y_train)), replace=False)
    )
    n_classes = int(y.max()) + 1
    noisy = y_train.copy()  # each flipped label moves to another class, drawn at random
    noisy[flipped] = (noisy[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    return scaler.transform(X_train), noisy, scaler.transform(X_test), y_test, flipped


def _load(options: dict):
    data = options.get("data", "breast_cancer")
    return _data(data, options["seed"], options["flip_fraction"], options["test_fraction"])


def describe(options: dict) -> dict:
    X_train, y_train, X_test, y_test, flipped = _load(options)
    return {
        "n_points": len(y_train),
        "queries": [f"heldout_{i}" for i in range(len(y_test))],
        "n_outputs": int(y_test.max()) + 1,  # log-probabilities of the classes
        "classes": y_test,  # the behaviour: log-probability of each held-out point's true class
        "ground_truth": flipped,  # evaluation only: never seen by sampling or estimation
        "labels": y_train,  # the (noisy) labels: each training point's own class
        "training_outputs": True,  # train returns (held-out outputs, training-point outputs)
    }


def _model(options: dict, n_rows: int, seed: int):
    if options.get("model", "logistic") == "knn":
        return KNeighborsClassifier(n_neighbors=min(options.get("n_neighbors", 5), n_rows))
    return LogisticRegression(C=options["C"], max_iter=1000, random_state=seed)


def train(indices, seed, device, options):
    X_train, y_train, X_test, _, _ = _load(options)
    labels = y_train[indices]
    n_classes = int(_load(options)[3].max()) + 1
    if len(np.unique(labels)) < 2:  # a one-class subset: predict its class frequency
        prior = np.full(n_classes, FLOOR)
        prior[labels[0] if len(labels) else 0] = 1.0
        prior = np.log(prior / prior.sum())
        return np.tile(prior, (len(X_test), 1)), np.tile(prior, (len(X_train), 1))
    model = _model(options, len(indices), seed).fit(X_train[indices], labels)
    outputs = []
    for X in (X_test, X_train):  # classes the subset lacks get the floor probability
        proba = np.full((len(X), n_classes), FLOOR)
        proba[:, model.classes_] = np.maximum(model.predict_proba(X), FLOOR)
        outputs.append(np.log(proba))
    return tuple(outputs)
