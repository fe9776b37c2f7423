"""The noisy-label protocol's metrics (benchmarks/noisy_labels.py) against hand-computed values,
and its task: the flips it plants are the ones it scores against."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import noisy_labels  # noqa: E402


def test_the_kmeans_split_flags_the_lower_cluster():
    values = np.array([0.0, 0.1, 1.0, 1.1, 1.2])
    assert noisy_labels.kmeans_f1(values, np.array([0, 1])) == 1.0
    # flagged {0, 1}, noisy {0, 2}: one true positive, one false positive, one false negative
    assert noisy_labels.kmeans_f1(values, np.array([0, 2])) == pytest.approx(0.5)
    # noisy points in the upper cluster: nothing right
    assert noisy_labels.kmeans_f1(values, np.array([3, 4])) == 0.0


def test_recall_at_k_counts_the_noisy_among_the_k_lowest():
    values = np.array([0.5, 0.1, 0.9, 0.2])
    assert noisy_labels.recall_at_k(values, np.array([1, 2])) == 0.5  # lowest two: 1 and 3
    assert noisy_labels.recall_at_k(values, np.array([1, 3])) == 1.0


def test_auc_is_the_chance_a_noisy_point_is_valued_below_a_clean_one():
    values = np.array([0.5, 0.1, 0.9, 0.2])
    # noisy {1, 2} against clean {0, 3}: 0.1 < 0.5, 0.1 < 0.2, 0.9 > both: 2 of 4 pairs
    assert noisy_labels.auc(values, np.array([1, 2])) == 0.5
    assert noisy_labels.auc(values, np.array([1, 3])) == 1.0
    assert noisy_labels.auc(-values, np.array([1, 3])) == 0.0


def test_a_shuffled_or_constant_value_scores_as_chance_or_worse():
    rng = np.random.default_rng(0)
    noisy = np.arange(20)
    planted = np.concatenate([np.full(20, -1.0), np.zeros(180)]) + 0.01 * rng.random(200)
    assert noisy_labels.evaluate(planted, noisy) == {
        "f1_kmeans": 1.0,
        "recall_at_k": 1.0,
        "auc": 1.0,
    }
    shuffled = noisy_labels.evaluate(rng.permutation(planted), noisy)
    assert shuffled["recall_at_k"] < 0.5 and shuffled["auc"] < 0.75
    assert noisy_labels.evaluate(np.zeros(200), noisy)["auc"] == 0.5


@pytest.mark.parametrize("name", sorted(noisy_labels.DATASETS))
def test_the_task_flips_the_labels_it_reports_to_another_class(name):
    X, y, X_valid, y_valid, flipped = noisy_labels.task(name, 0.2, seed=3, max_train=500)
    again = noisy_labels.task(name, 0.0, seed=3, max_train=500)
    clean = again[1]
    assert len(flipped) == round(0.2 * len(y)) and len(y) <= 500
    assert np.all(y[flipped] != clean[flipped])
    kept = np.setdiff1d(np.arange(len(y)), flipped)
    assert np.array_equal(y[kept], clean[kept])
    assert np.allclose(X.mean(0), 0, atol=1e-9) and len(X_valid) == len(y_valid)


def test_the_relabel_list_is_scored_against_the_flipped_set():
    class Listed:  # a fitted detector's list: points 0, 1 and 4 of six
        selected_ = np.array([True, True, False, False, True, False])
        expected_clean_, min_list_, calibration_values_ = 0.3, 2, np.zeros(9)

    scored = noisy_labels.relabel_list(Listed(), np.array([0, 4, 5]))
    # listed 3: two flipped (0, 4) and one clean (1); flipped 3, two of them found
    assert scored["listed"] == 3
    assert scored["fdp"] == pytest.approx(1 / 3)
    assert scored["power"] == pytest.approx(2 / 3)
    assert (scored["min_list"], scored["n_calibration"]) == (2, 9)
