"""Quality bars derived from each test's own planted truth: the ranking bar of the workflow
tests, and the false discovery rate of a selection over many planted replicates.

At the tiny budgets of the workflow tests the LASSO often selects nothing, yet the debiased AMEs
(``ame_debiased`` in estimates.npz: every unit, no shrinkage) must rank the planted units above
the rest. The bar is the Mann–Whitney null: a ranking unrelated to the truth has an AUC of mean
1/2 and standard deviation sqrt((N + 1) / (12 n (N − n))) for n true units among N, so a mean
z-score over queries of at least ``Z_BAR`` happens by chance with probability below 0.0014
(below it for independent queries, at most it for identical ones). Every check also scores a
shuffled and an all-zero estimate against the same bar and requires both to fail it, so each
test shows that its bar tells a real answer from a random one.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

Z_BAR = 3.0


def auc_z(values: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (queries, units): (AUC of the truth − 1/2) / its null sd."""
    values = np.atleast_2d(np.nan_to_num(np.asarray(values, dtype=float)))
    n_units = values.shape[1]
    is_true = np.zeros(n_units, dtype=bool)
    is_true[truth] = True
    n = is_true.sum()
    ranks = rankdata(values, axis=1)
    auc = (ranks[:, is_true].sum(1) - n * (n + 1) / 2) / (n * (n_units - n))
    return (auc - 0.5) / np.sqrt((n_units + 1) / (12 * n * (n_units - n)))


def assert_finds_the_planted_units(estimates, truth, direction="positive") -> float:
    """Mean z over queries of the debiased AMEs; assert it clears ``Z_BAR`` while a shuffled
    and an all-zero estimate of the same shape do not. Returns the mean z."""
    sign = 1.0 if direction == "positive" else -1.0
    debiased = sign * estimates.inference["ame_debiased"]
    shuffled = np.random.default_rng(0).permutation(debiased, axis=1)
    z = float(auc_z(debiased, truth).mean())
    assert float(auc_z(shuffled, truth).mean()) < Z_BAR
    assert float(auc_z(np.zeros_like(debiased), truth).mean()) < Z_BAR
    assert z >= Z_BAR, f"mean AUC z-score {z:.2f} of the debiased AMEs is below {Z_BAR}"
    return z


def check_run(results: str, dataset: str, direction: str = "positive") -> float:
    """The bar for one run's ``estimates.npz`` against its dataset's ground truth."""
    from ame.data import Dataset
    from ame.estimation.results import Estimates

    estimates, data = Estimates.load(results), Dataset.load(dataset)
    truth = data.source_truth() if estimates.unit == "source" else data.ground_truth
    positions = np.flatnonzero(np.isin(estimates.ids, truth))  # restricted levels: their columns
    return assert_finds_the_planted_units(estimates, positions, direction)


def false_discovery_proportions(selected, true):
    """Per query (row): the share of the selected units whose true effect is zero."""
    false = (selected & (true == 0)).sum(1)
    return false / np.maximum(selected.sum(1), 1)


def assert_fdr_controlled(fdp, fdr, margin):
    """Mean FDP over all replicates <= q + margin, a bound that a true FDR of 2q would fail.

    An FDP with mean μ has variance at most μ(1 − μ); at μ = 2q the mean of n of them then has a
    standard error of at most sqrt(2q(1 − 2q) / n), and the test only passes if q + margin lies
    more than three of those below 2q.
    """
    fdp = np.concatenate(fdp)
    resolution = 3 * np.sqrt(2 * fdr * (1 - 2 * fdr) / fdp.size)
    assert fdr + margin <= 2 * fdr - resolution  # the test can tell q from 2q
    assert fdp.mean() <= fdr + margin
