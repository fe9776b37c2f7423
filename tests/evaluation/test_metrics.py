"""Evaluation metrics against hand-computed values, and the budget curve built from prefixes."""

import numpy as np
import pytest

from ame.estimation.results import Estimates, PrefixEstimates
from ame.evaluation.metrics import budget_curve, selection_scores, topk_precision


def test_precision_and_recall_by_hand():
    truth = np.array([0, 1, 2])
    selected = np.array(
        [
            [1, 1, 0, 1, 0],  # 2 hits of 3 selected: precision 2/3, recall 2/3
            [0, 0, 0, 0, 0],  # nothing selected: precision 1 (no false discovery), recall 0
            [1, 1, 1, 1, 1],  # everything: precision 3/5, recall 1
        ],
        dtype=bool,
    )
    precision, recall = selection_scores(selected, truth)
    np.testing.assert_allclose(precision, [2 / 3, 1.0, 3 / 5])
    np.testing.assert_allclose(recall, [2 / 3, 0.0, 1.0])


def test_a_zero_ame_ranks_nothing():
    """Ties at zero, broken by index order, must not score: point 0 is true but its AME is 0."""
    truth = np.array([0, 1])
    np.testing.assert_allclose(topk_precision(np.array([[0.0, 0.3, 0.0, 0.0]]), truth), [0.5])
    np.testing.assert_allclose(topk_precision(np.zeros((1, 4)), truth), [0.0])
    np.testing.assert_allclose(topk_precision(np.array([[np.nan, 1.0, 0, 0]]), truth), [0.5])


def test_topk_precision_by_hand_both_directions():
    truth = np.array([3, 4])
    ame = np.array([[0.1, 0.5, 0.0, 0.9, 0.2], [0.0, 0.0, 0.0, -1.0, -2.0]])
    # positive: top 2 of row 0 are points 3 (0.9) and 1 (0.5): one of two is true
    np.testing.assert_allclose(topk_precision(ame, truth), [0.5, 0.0])
    np.testing.assert_allclose(topk_precision(ame, truth, "negative")[1], 1.0)


def _estimates(ame, selected):
    return Estimates(
        np.asarray(ame, float),
        None,
        np.asarray(selected, bool),
        np.zeros(1),
        ["q"],
        "AME",
        np.arange(4),
        "point",
        [0],
    )


def test_budget_curve_scores_the_prefixes_then_the_full_estimate():
    truth = np.array([0])
    full = _estimates([[1.0, 0.0, 0.0, 0.0]], [[1, 0, 0, 0]])
    prefixes = PrefixEstimates(
        n_submodels=np.array([10]),
        n_rows=np.array([10]),
        ame=np.array([[[0.0, 1.0, 0.0, 0.0]]], np.float32),
        selected=np.array([[[0, 1, 1, 0]]], bool),
        ids=np.arange(4),
        names=["q"],
        unit="point",
    )
    curve = budget_curve(full, prefixes, 40, truth, 4, "positive")
    assert curve["n_submodels"].tolist() == [10, 40]
    assert curve["precision"].tolist() == [0.0, 1.0]
    assert curve["recall"].tolist() == [0.0, 1.0]
    assert curve["topk_precision"].tolist() == [0.0, 1.0]
    assert curve["n_selected"].tolist() == [2, 1]


def test_prefix_estimates_round_trip(tmp_path):
    prefixes = PrefixEstimates(
        np.array([5, 10]),
        np.array([5, 9]),
        np.zeros((2, 1, 3), np.float32),
        np.zeros((2, 1, 3), bool),
        np.arange(3),
        ["aggregate"],
        "source",
    )
    prefixes.save(tmp_path / "p.npz")
    back = PrefixEstimates.load(tmp_path / "p.npz")
    assert back.names == ["aggregate"] and back.unit == "source"
    np.testing.assert_array_equal(back.n_rows, [5, 9])


@pytest.mark.parametrize(("fractions", "expected"), [([0.125, 0.5, 1.0], [5, 20]), ([1.0], [])])
def test_prefix_sizes_leave_out_the_full_budget(fractions, expected):
    from ame.estimation.results import prefix_sizes

    assert prefix_sizes(fractions, 40) == expected
