"""Mislabelled training points on the field's protocol: this project against pyDVL 0.10.

The protocol of OpenDataVal's noisy-label task (which the Data-OOB paper's code shares): a data
set that ships with scikit-learn is standardized and split, stratified, into training points
(at most ``--max-train``) and validation points; a share ``--rates`` of the training labels is
flipped, each to another class drawn at random; every method values every training point with
the same number of model fits (``--fits``); a point is flagged when its value falls in the lower
of the two clusters of a k-means split of the values (k = 2, OpenDataVal's ``noisy_detection``).
Reported per data set, model, rate and seed: the F1 of that split against the flipped set, the
recall among the k lowest values (k = the number flipped) and the AUC of the values (low:
suspect). The seed draws the split, the flips and every method's randomness; nothing is tuned.

Methods (a low value means suspect for all of them):

- ``ame``: ``ame.AMEExperiment(budget=fits)`` of the validation log-likelihood of the true
  labels, at the package's default design and estimator; the value is the debiased AME, which
  ranks every point (a mislabelled point lowers the log-likelihood);
- ``ame_oos``: the same submodels asked for each training point's own label when it was out of
  the subset: the out-of-subset accuracy (Data-OOB's estimand). The call does not return
  training points' predictions yet, so the benchmark retrains the call's subsets (the models
  are deterministic: the same submodels) and times that pass alone;
- ``ame_oos_p<p>``: the out-of-subset accuracy from the submodels of one level ``p`` of the
  design only (a quarter of the fits each on the default grid): how it depends on the size of
  the subsets the models were trained on, a diagnosis, not a method;
- ``ame_oos_probability``: the mean out-of-subset probability of the own label, from
  ``ame.estimation.mislabel.MislabelDetector`` with the validation points as calibration
  points; its relabel list at FDR ``--fdr`` is scored against the flipped set (``listed``,
  ``fdp``, ``power``);
- ``data_oob``: pyDVL's ``DataOOBValuation`` of a ``BaggingClassifier`` of ``fits`` models;
- ``msr_banzhaf``: pyDVL's ``MSRBanzhafValuation`` of validation accuracy, ``MaxSamples(fits)``;
- ``loo``: pyDVL's ``LOOValuation`` of validation accuracy (one fit per point, whatever ``fits``);
- ``knn_shapley``: pyDVL's exact ``KNNShapleyValuation`` (the kNN model only; no fits);
- ``random``: values drawn uniformly, the floor every method must beat.

pyDVL 0.10 pins numpy < 2, so its methods run in their own virtual environment (the one
``python_api.py`` builds) and are fed the same arrays.

    .venv/bin/python benchmarks/noisy_labels.py [--datasets breast_cancer wine digits iris]
        [--models logistic knn] [--rates 0.1 0.2] [--seeds 0 1 2] [--fits 1200] [--fdr 0.1]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from python_api import peer_python
from record import add, recorded
from sklearn import datasets
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

import ame
from ame.estimation.knockoffs import KnockoffPowerWarning
from ame.estimation.mislabel import MislabelDetector, out_of_subset_means

DATASETS = {
    "breast_cancer": datasets.load_breast_cancer,
    "wine": datasets.load_wine,
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
}
MODELS = {
    "logistic": lambda: LogisticRegression(max_iter=500),
    "knn": lambda: KNeighborsClassifier(n_neighbors=5),
}
#: the peers' code, run by pyDVL's interpreter: values of every training point per method
PEER = r"""
import json, sys, time, warnings
import numpy as np
from sklearn.ensemble import BaggingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from pydvl.valuation import (DataOOBValuation, Dataset, KNNShapleyValuation, LOOValuation,
                             MaxSamples, ModelUtility, MSRBanzhafValuation, SupervisedScorer)

warnings.simplefilter("ignore")
arrays = np.load(sys.argv[1])
X, y, Xv, yv = arrays["X"], arrays["y"], arrays["Xv"], arrays["yv"]
model_name, fits, seed = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
make = {"logistic": lambda: LogisticRegression(max_iter=500),
        "knn": lambda: KNeighborsClassifier(n_neighbors=5)}[model_name]
train = Dataset(X, y)

def values_of(result):
    values = np.full(len(y), np.nan)
    values[result.indices] = result.values
    return values.tolist()

out = {}
def timed(name, run):
    t0 = time.perf_counter()
    out[name] = {"values": values_of(run()), "seconds": time.perf_counter() - t0}

accuracy = lambda: ModelUtility(make(), SupervisedScorer("accuracy", Dataset(Xv, yv), default=0.0))
def msr():
    method = MSRBanzhafValuation(accuracy(), is_done=None, seed=seed)
    method.is_done = MaxSamples(method.sampler, fits)  # the method's own sampler: count its sets
    return method.fit(train).values()
timed("data_oob", lambda: DataOOBValuation(
    BaggingClassifier(make(), n_estimators=fits, random_state=seed).fit(X, y)).fit(train).values())
timed("msr_banzhaf", msr)
timed("loo", lambda: LOOValuation(accuracy()).fit(train).values())
if model_name == "knn":
    timed("knn_shapley", lambda: KNNShapleyValuation(
        make(), Dataset(Xv, yv), progress=False).fit(train).values())
print(json.dumps(out))
"""


def kmeans_f1(values: np.ndarray, noisy: np.ndarray) -> float:
    """F1 of the lower cluster of a two-cluster k-means split of the values, as the noisy set."""
    values = np.asarray(values, dtype=float).reshape(-1, 1)
    split = KMeans(n_clusters=2, n_init=10, random_state=0).fit(values)
    flagged = split.labels_ == np.argmin(split.cluster_centers_.ravel())
    truth = np.zeros(len(values), dtype=bool)
    truth[noisy] = True
    return float(f1_score(truth, flagged))


def recall_at_k(values: np.ndarray, noisy: np.ndarray) -> float:
    """The share of the noisy points among the k lowest values, k = the number of noisy points."""
    lowest = np.argsort(np.asarray(values, dtype=float), kind="stable")[: len(noisy)]
    return float(np.isin(lowest, noisy).mean())


def auc(values: np.ndarray, noisy: np.ndarray) -> float:
    """The chance that a noisy point has a lower value than a clean one."""
    truth = np.zeros(len(values), dtype=bool)
    truth[noisy] = True
    return float(roc_auc_score(truth, -np.asarray(values, dtype=float)))


def task(name: str, rate: float, seed: int, max_train: int):
    """(X, y with flipped labels, X_valid, y_valid, flipped indices) of one data set and seed."""
    X, y = DATASETS[name](return_X_y=True)
    X_train, X_valid, y_train, y_valid = train_test_split(
        X, y, train_size=min(max_train, int(0.7 * len(y))), stratify=y, random_state=seed
    )
    mean, scale = X_train.mean(0), X_train.std(0)
    scale[scale == 0] = 1.0
    X_train, X_valid = (X_train - mean) / scale, (X_valid - mean) / scale
    rng = np.random.default_rng(seed)
    flipped = np.sort(rng.choice(len(y_train), size=round(rate * len(y_train)), replace=False))
    n_classes = len(np.unique(y))
    noisy = y_train.copy()
    noisy[flipped] = (noisy[flipped] + rng.integers(1, n_classes, len(flipped))) % n_classes
    return X_train, noisy, X_valid, y_valid, flipped


def log_likelihood(model_name: str, X, y, X_valid, y_valid):
    """The utility AME regresses: mean log-probability of the validation points' labels for a
    model trained on a subset (a label the subset lacks gets probability 1e-6)."""

    def utility(indices):
        model = MODELS[model_name]().fit(X[indices], y[indices])
        proba = np.full((len(y_valid), int(y.max()) + 1), 1e-6)
        proba[:, model.classes_] = np.maximum(model.predict_proba(X_valid), 1e-6)
        return float(np.log(proba[np.arange(len(y_valid)), y_valid]).mean())

    return utility


def ame_experiment(model_name, X, y, X_valid, y_valid, fits, seed):
    t0 = time.perf_counter()
    run = ame.AMEExperiment(fits, random_state=seed, n_jobs=2, progress=False)
    run.fit(log_likelihood(model_name, X, y, X_valid, y_valid), len(y))
    return run, time.perf_counter() - t0


def own_label(model_name, X, y, X_valid, y_valid, indices) -> np.ndarray:
    """A model trained on ``indices``: whether it predicts each training and validation point's
    own label, and the probability it gives that label (2 × points, training points first; a
    class the subset lacks has probability 0)."""
    model = MODELS[model_name]().fit(X[indices], y[indices])
    points, labels = np.concatenate([X, X_valid]), np.concatenate([y, y_valid])
    proba = np.zeros((len(labels), int(labels.max()) + 1))
    proba[:, model.classes_] = model.predict_proba(points)
    return np.stack([model.predict(points) == labels, proba[np.arange(len(labels)), labels]])


def out_of_subset(run, model_name, X, y, X_valid, y_valid, fdr, seed):
    """On the call's own subsets: the out-of-subset accuracy (Data-OOB's estimand), the same
    from each level of the design alone ({p: values}), the detector on the own-label
    probabilities (0/1 hits tie among the worst-predicted points, calibration points included,
    and ties leave the conformal p-values no resolution), and the seconds of the prediction
    pass."""
    t0 = time.perf_counter()
    masks, n = run.masks_.masks, len(y)
    own = np.array(
        Parallel(n_jobs=2)(
            delayed(own_label)(model_name, X, y, X_valid, y_valid, np.flatnonzero(row))
            for row in masks
        ),
        dtype=float,
    )  # submodels × (hit, probability) × points
    accuracy, _, _ = out_of_subset_means(masks, own[:, 0, :n])
    levels = run.masks_.p
    by_level = {
        float(p): out_of_subset_means(masks[levels == p], own[levels == p, 0, :n])[0]
        for p in np.unique(levels)
    }
    found = MislabelDetector(fdr=fdr, random_state=seed)
    found.fit(masks, own[:, 1, :n], own[:, 1, n:])
    return accuracy, by_level, found, time.perf_counter() - t0


def relabel_list(found: MislabelDetector, flipped: np.ndarray) -> dict:
    """The relabel list against the flipped set: its length, false discovery proportion,
    power, and what the detector says of it."""
    listed = found.selected_
    truth = np.zeros(listed.size, dtype=bool)
    truth[flipped] = True
    return {
        "listed": int(listed.sum()),
        "fdp": float((listed & ~truth).sum() / max(listed.sum(), 1)),
        "power": float((listed & truth).sum() / max(truth.sum(), 1)),
        "expected_clean": round(found.expected_clean_, 2),
        "min_list": found.min_list_,
        "n_calibration": int(found.calibration_values_.size),
    }


def evaluate(values: np.ndarray, flipped: np.ndarray) -> dict:
    values = np.nan_to_num(np.asarray(values, dtype=float), nan=np.nanmean(values))
    return {
        "f1_kmeans": kmeans_f1(values, flipped),
        "recall_at_k": recall_at_k(values, flipped),
        "auc": auc(values, flipped),
    }


def benchmark(args) -> list[dict]:
    python, rows = peer_python(), []
    for name in args.datasets:
        for model_name in args.models:
            for rate in args.rates:
                for seed in args.seeds:
                    X, y, X_valid, y_valid, flipped = task(name, rate, seed, args.max_train)
                    task_arrays = (model_name, X, y, X_valid, y_valid)
                    run, seconds = ame_experiment(*task_arrays, args.fits, seed)
                    values = run.estimates_.inference["ame_debiased"][0]
                    found = {"ame": (np.nan_to_num(values, nan=0.0), seconds)}
                    accuracy, by_level, detector, seconds = out_of_subset(
                        run, *task_arrays, args.fdr, seed
                    )
                    found["ame_oos"] = (accuracy, seconds)
                    for p, level_accuracy in by_level.items():
                        found[f"ame_oos_p{p:g}"] = (level_accuracy, seconds)
                    found["ame_oos_probability"] = (detector.value_, seconds)
                    with tempfile.TemporaryDirectory() as tmp:
                        arrays = Path(tmp) / "task.npz"
                        np.savez(arrays, X=X, y=y, Xv=X_valid, yv=y_valid)
                        settings = [model_name, str(args.fits), str(seed)]
                        done = subprocess.run(
                            [python, "-c", PEER, arrays, *settings],
                            capture_output=True, text=True, check=True,
                        )  # fmt: skip
                    for method, result in json.loads(done.stdout.splitlines()[-1]).items():
                        found[method] = (np.asarray(result["values"]), result["seconds"])
                    found["random"] = (np.random.default_rng(seed).random(len(y)), 0.0)
                    for method, (values, seconds) in found.items():
                        row = {
                            "dataset": name, "model": model_name, "rate": rate, "seed": seed,
                            "n_train": len(y), "n_flipped": len(flipped), "method": method,
                            **evaluate(values, flipped), "seconds": round(seconds, 1),
                        }  # fmt: skip
                        if method == "ame_oos_probability":
                            row.update(relabel_list(detector, flipped))
                        rows.append(row)
                        print(
                            f"{name:13s} {model_name:8s} {rate:.1f} seed {seed} {method:12s} "
                            f"F1 {row['f1_kmeans']:.3f}  recall@k {row['recall_at_k']:.3f}  "
                            f"AUC {row['auc']:.3f}  {seconds:6.1f} s",
                            flush=True,
                        )
    return rows


def summary(rows: list[dict]) -> dict:
    """Means over seeds per data set, model, rate and method, and the mean over everything."""
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault((row["dataset"], row["model"], row["rate"], row["method"]), []).append(row)
    out = {}
    for (name, model, rate, method), group in cells.items():
        key = f"{name}/{model}/{rate}/{method}"
        out[key] = {
            m: float(np.mean([r[m] for r in group])) for m in ("f1_kmeans", "recall_at_k", "auc")
        }
    for method in sorted({row["method"] for row in rows}):
        group = [row for row in rows if row["method"] == method]
        out[f"all/{method}"] = {
            m: float(np.mean([r[m] for r in group])) for m in ("f1_kmeans", "recall_at_k", "auc")
        }
    lists = [row for row in rows if "fdp" in row]
    if lists:
        out["relabel_list"] = {
            m: float(np.mean([r[m] for r in lists])) for m in ("listed", "fdp", "power")
        }
        out["relabel_list"]["runs"] = len(lists)
    return out


def main() -> None:
    warnings.simplefilter("ignore", KnockoffPowerWarning)  # the values need no selection
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=list(DATASETS))
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--rates", nargs="+", type=float, default=[0.1, 0.2])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fits", type=int, default=1200)
    parser.add_argument("--max-train", type=int, default=500)
    parser.add_argument("--fdr", type=float, default=0.1, help="q of the relabel list")
    args = parser.parse_args()
    rows = benchmark(args)
    add("rows", rows)
    means = summary(rows)
    add("summary", means)
    print("\nmean over every data set, model, rate and seed:")
    for key, value in means.items():
        if key.startswith("all/"):
            print(
                f"{key[4:]:12s} F1 {value['f1_kmeans']:.3f}  recall@k {value['recall_at_k']:.3f}  "
                f"AUC {value['auc']:.3f}"
            )
    if "relabel_list" in means:
        lists = means["relabel_list"]
        print(
            f"relabel list at FDR {args.fdr}: {lists['listed']:.1f} points listed, FDR "
            f"{lists['fdp']:.3f}, power {lists['power']:.3f} (mean of {lists['runs']} runs)"
        )


if __name__ == "__main__":
    with recorded(__file__):  # the whole package: the call, its estimator and its defaults
        main()
    sys.exit(0)
