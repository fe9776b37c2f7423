"""Mislabelled training points from the experiment the AMEs already run, with an error rate.

Every submodel trains on a random subset, so each training point is, for the submodels that
left it out, a point they never saw. The mean of its own-label score over those submodels (its
*out-of-subset value*: Data-OOB's estimand, read from the randomized design instead of bootstrap
bags) is low for a label the rest of the data contradicts: a mislabelled point.

Which of the low values are mislabels, with a controlled error rate: each value is compared
with *calibration points*, labelled points that no submodel trained on (the validation or query
points of a study) and whose labels are trusted, scored by the same submodels. A calibration
point averages over the out-of-subset rows of a training column drawn at random, so it sees as
many submodels of the same sizes as a training point does. Then a clean training point and a
calibration point are nearly exchangeable (the same data distribution and the same kind of
submodels; not the very same rows: a point's own rows are those that left *it* out), the
conformal p-value (1 + calibration values at or below the point's) / (n + 1) is valid for a
clean label up to that, and Benjamini–Hochberg on these p-values
controls the false discovery rate of the relabel list (Bates, Candès, Lei, Romano and Sesia,
"Testing for outliers with conformal p-values", Ann. Statist. 2023). No flipped label, and no
guess at the noise rate, enters the selection.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

from ame.errors import UserError
from ame.estimation.knockoffs import bh_select, check_fdr


def out_of_subset_means(masks: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per column: the mean score over the rows (submodels) that left it out, its standard
    error and the number of those rows; NaN where no row left it out."""
    out = ~masks
    n_out = out.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (scores * out).sum(0) / n_out
        spread = ((scores - mean) ** 2 * out).sum(0) / np.maximum(n_out - 1, 1)
        stderr = np.sqrt(spread / n_out)
    return mean, stderr, n_out


def conformal_pvalues(values: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """(1 + #calibration values ≤ value) / (n + 1) per value: valid for a value exchangeable
    with the calibration values (ties count against the point, so they stay valid); NaN stays
    NaN."""
    calibration = np.sort(calibration[~np.isnan(calibration)])
    below = np.searchsorted(calibration, values, side="right")
    pvalues = (1.0 + below) / (calibration.size + 1.0)
    return np.where(np.isnan(values), np.nan, pvalues)


class MislabelDetector:
    """Out-of-subset values of training points and a relabel list at a false discovery rate.

    Parameters
    ----------
    fdr : float
        Target false discovery rate q of the relabel list: the expected share of clean points
        among the points it lists.
    ci_level : float
        Level of the normal interval around each out-of-subset value.
    storey_lambda : float
        p-values above it estimate the share of clean points (Storey's π0), which the expected
        number of clean points on the list uses; the selection itself does not.
    random_state : int or None
        Draws the training column whose out-of-subset rows each calibration point uses.

    Attributes
    ----------
    value_ : (n_points,) mean own-label score out of the subset (NaN: never left out)
    stderr_, ci_low_, ci_high_ : (n_points,) its standard error and interval
    n_out_ : (n_points,) submodels that left the point out
    calibration_values_ : (n_calibration,) the calibration points' values
    n_calibration_ : calibration points with a value (the conformal p-values' denominator)
    pvalues_ : (n_points,) conformal p-values of "this label is as well predicted as a clean
        point's" (small: suspect)
    selected_ : (n_points,) bool, the relabel list (Benjamini–Hochberg at ``fdr``)
    relabel_order_ : indices of the listed points, lowest value first
    expected_clean_ : expected number of clean points on the list (Storey's π0 × points × the
        list's p-value threshold; at most ``fdr`` × its length)
    clean_share_ : Storey's estimate of the share of clean labels
    min_list_ : the shortest list these calibration points allow: the smallest p-value is
        1 / (n + 1), and BH lists k points only when their p-values are ≤ q k / N
    unidentifiable_ : (n_points,) bool, points no submodel left out: no value, never listed
    """

    def __init__(
        self,
        fdr: float = 0.1,
        ci_level: float = 0.95,
        storey_lambda: float = 0.5,
        random_state: int | None = None,
    ):
        self.fdr = fdr
        self.ci_level = ci_level
        self.storey_lambda = storey_lambda
        self.random_state = random_state

    def fit(self, masks, scores, calibration_scores) -> MislabelDetector:
        """Learn from the subsets (``masks``: submodels × training points, True = trained on),
        each submodel's own-label score of every training point (``scores``, same shape:
        correctness or probability, high = well predicted) and of every calibration point
        (``calibration_scores``: submodels × calibration points)."""
        masks, scores, calibration = self._checked(masks, scores, calibration_scores)
        n_subsets, n_points = masks.shape
        self.value_, self.stderr_, self.n_out_ = out_of_subset_means(masks, scores)
        self.unidentifiable_ = self.n_out_ == 0
        z = norm.ppf(0.5 + self.ci_level / 2)
        self.ci_low_ = self.value_ - z * self.stderr_
        self.ci_high_ = self.value_ + z * self.stderr_

        rng = np.random.default_rng(self.random_state)
        columns = rng.integers(n_points, size=calibration.shape[1])
        self.calibration_values_, _, _ = out_of_subset_means(masks[:, columns], calibration)
        self.pvalues_ = conformal_pvalues(self.value_, self.calibration_values_)
        self.selected_ = bh_select(self.pvalues_, self.fdr)[0]

        listed = np.flatnonzero(self.selected_)
        self.relabel_order_ = listed[np.argsort(self.value_[listed], kind="stable")]
        known = self.pvalues_[~np.isnan(self.pvalues_)]
        above = (known > self.storey_lambda).sum()
        self.clean_share_ = float(min(1.0, above / ((1 - self.storey_lambda) * max(known.size, 1))))
        threshold = self.fdr * listed.size / max(known.size, 1)
        self.expected_clean_ = float(self.clean_share_ * known.size * threshold)
        self.n_calibration_ = int((~np.isnan(self.calibration_values_)).sum())
        self.min_list_ = (
            math.ceil(known.size / (self.fdr * (self.n_calibration_ + 1))) if self.fdr else 0
        )
        return self

    def table(self):
        """The points as a user relabels them: listed first, lowest value first, each with its
        value, interval, p-value and number of submodels that left it out (pandas)."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "point": np.arange(self.value_.size),
                "value": self.value_,
                "ci_low": self.ci_low_,
                "ci_high": self.ci_high_,
                "pvalue": self.pvalues_,
                "n_out": self.n_out_,
                "listed": self.selected_,
            }
        )
        frame = frame.sort_values(["listed", "value"], ascending=[False, True], kind="stable")
        return frame.reset_index(drop=True)

    def _checked(self, masks, scores, calibration_scores):
        check_fdr(self.fdr)
        if not 0 < self.ci_level < 1:
            raise UserError(f"ci_level: must lie in (0, 1), got {self.ci_level!r}")
        if not 0 <= self.storey_lambda < 1:
            raise UserError(f"storey_lambda: must lie in [0, 1), got {self.storey_lambda!r}")
        masks = np.asarray(masks, dtype=bool)
        scores = np.asarray(scores, dtype=np.float64)
        calibration = np.asarray(calibration_scores, dtype=np.float64)
        if masks.ndim != 2 or masks.shape[1] < 1:
            raise UserError(f"masks: expected (subsets, points), got shape {masks.shape}")
        if scores.shape != masks.shape:
            raise UserError(
                f"scores: expected one score per subset and training point {masks.shape}, "
                f"got {scores.shape}"
            )
        if calibration.ndim != 2 or calibration.shape[0] != masks.shape[0]:
            raise UserError(
                f"calibration_scores: expected (subsets={masks.shape[0]}, calibration points), "
                f"got {calibration.shape}"
            )
        if calibration.shape[1] < 1:
            raise UserError(
                "calibration_scores: no calibration points (labelled points no submodel "
                "trained on, e.g. the validation points)"
            )
        for name, values in (("scores", scores), ("calibration_scores", calibration)):
            if not np.isfinite(values).all():
                bad = np.argwhere(~np.isfinite(values))[0]
                raise UserError(f"{name}: not finite at subset {bad[0]}, point {bad[1]}")
        return masks, scores, calibration
