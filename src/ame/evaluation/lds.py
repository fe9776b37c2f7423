"""Held-out LDS: how well the estimated effects predict new submodels (the first of the
validate step's two checks, ``ame.evaluation.validation``; the second is
``ame.evaluation.removal``).

The **linear datamodeling score** (LDS; datamodels, TRAK, dattri). The validation experiment (the
run plan's ``validation`` kind) trains submodels on fresh subsets that the estimator never reads.
The estimated effects predict each one's behaviour and the LDS of a query is the Spearman
correlation of prediction and measurement. The p-dependent mean (bigger subsets, better models)
would inflate a pooled correlation, so it is computed **within each p value** (within quantile
bins of p for continuous designs, after the behaviour's linear trend in p) and averaged with
weights by rows. Within one p the estimator's prediction intercept(p) + Σ_n β_n x_n(S, p) is, for
both featurizations, a positive multiple of Σ_n AME_n (1[n ∈ S] − p) plus a constant: the rank
correlation needs neither the intercepts (which ``estimates.npz`` does not keep) nor the
featurization, and Σ_n AME_n (1[n ∈ S] − p), the first-order prediction of the deviation from the
p mean, is what is plotted.

The interval is for the LDS these estimates reach on the design's whole population of subsets
(:func:`lds_interval`). Units with no estimate (NaN: in every subset or in none) predict nothing.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from scipy.stats import rankdata

from ame.sampling import Design

MIN_GROUP = 3  # rows of one p group needed for a rank correlation

ROWS_PER_BIN = (
    10  # continuous designs: quantile bins of p of about this many rows (at most N_P_BINS)
)

N_P_BINS = 10

CI_LEVEL = 0.95

Z_CLIP = 1 - 1e-9  # |LDS| = 1 has an infinite Fisher z


def p_groups(p: np.ndarray, design: Design) -> tuple[np.ndarray, str]:
    """Group of each row, and what a group is: one per p value of a discrete design, or quantile
    bins of p (about ``ROWS_PER_BIN`` rows each, at most ``N_P_BINS``) for a continuous one.

    The design decides, not the data: a continuous design with few validation submodels has few
    distinct p values, yet each row would be alone in its group."""
    if design.is_discrete:
        return np.unique(p, return_inverse=True)[1], "p value"
    n_bins = int(np.clip(len(p) // ROWS_PER_BIN, 1, N_P_BINS))
    edges = np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(np.searchsorted(edges, p, side="right"), return_inverse=True)[1], "p bin"


def predict(ame: np.ndarray, unit_masks: np.ndarray, p: np.ndarray) -> np.ndarray:
    """First-order prediction of each behaviour's deviation from its p mean.

    An unidentifiable unit (NaN AME: in every subset or in none) contributes nothing: the
    estimate says nothing about it, and one NaN must not void every prediction.

    Parameters
    ----------
    ame : ndarray of shape (n_queries, n_units)
    unit_masks : ndarray of bool, shape (n_subsets, n_units)
    p : ndarray of shape (n_subsets,)

    Returns
    -------
    ndarray of shape (n_subsets, n_queries): Σ_n AME_n (1[n ∈ S] − p).
    """
    ame = np.nan_to_num(np.asarray(ame, dtype=float), nan=0.0)
    return (unit_masks.astype(float) - p[:, None]) @ ame.T


def _spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman correlation of matching columns of ``a`` and ``b`` along axis -2 (rows); NaN
    where either column is constant."""
    ra, rb = rankdata(a, axis=-2), rankdata(b, axis=-2)
    ra -= ra.mean(-2, keepdims=True)
    rb -= rb.mean(-2, keepdims=True)
    denom = np.sqrt((ra**2).sum(-2) * (rb**2).sum(-2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (ra * rb).sum(-2) / np.where(denom > 0, denom, 1), np.nan)


def _correlation(predicted: np.ndarray, Y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Spearman correlation of prediction and behaviour within one p group, per query, once the
    behaviour's linear trend in p is removed: nothing for a p value (p is constant), and inside
    a bin of a continuous design the p-dependent mean would otherwise swamp the effects.

    Arrays of shape (..., rows, n_queries) and p of shape (..., rows): leading axes are a batch
    (the leave-one-out samples of the jackknife)."""
    dp = p - p.mean(-1, keepdims=True)
    ss = (dp**2).sum(-1, keepdims=True)
    if np.any(ss > 0):
        slope = np.einsum("...r,...rq->...q", dp, Y) / np.where(ss > 0, ss, 1)
        Y = Y - dp[..., None] * slope[..., None, :]
    return _spearman(predicted, Y)


def _group_correlations(predicted, Y, p, groups) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Rows of each group, and per group its weight (rows; 0 when too small) and within-group
    correlation per query, of shapes (n_groups,) and (n_groups, n_queries)."""
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]
    weights = np.array([rows.size if rows.size >= MIN_GROUP else 0 for rows in members], float)
    r = np.full((len(members), Y.shape[1]), np.nan)
    for g, rows in enumerate(members):
        if weights[g]:
            r[g] = _correlation(predicted[rows], Y[rows], p[rows])
    return members, weights, r


def _pooled(weights: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Row-weighted mean over groups (axis -2) of the finite correlations, per query."""
    ok = np.isfinite(r) & (weights[..., None] > 0)
    total = np.where(ok, r * weights[..., None], 0).sum(-2)
    weight = np.where(ok, weights[..., None], 0).sum(-2)
    with np.errstate(invalid="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1), np.nan)


def lds(
    ame: np.ndarray, unit_masks: np.ndarray, p: np.ndarray, Y: np.ndarray, design: Design
) -> tuple[np.ndarray, list[str | None]]:
    """Linear datamodeling score of every query, compared within each p group.

    Parameters
    ----------
    ame : ndarray of shape (n_queries, n_units)
        Estimated effects (NaN for unidentifiable units, which then predict nothing).
    unit_masks : ndarray of bool, shape (n_subsets, n_units)
        Held-out subsets (never seen by the estimator).
    p : ndarray of shape (n_subsets,)
    Y : ndarray of shape (n_subsets, n_queries)
        Measured behaviours of the held-out submodels.
    design : Design
        The design the held-out subsets were drawn from (decides the p groups).

    Returns
    -------
    scores : ndarray of shape (n_queries,)
        NaN where no p group allows a correlation.
    notes : list of str or None
        Why a score is NaN.
    """
    groups, _ = p_groups(p, design)
    predicted = predict(ame, unit_masks, p)
    members, weights, r = _group_correlations(predicted, Y, p, groups)
    scores = _pooled(weights, r)
    big = [rows for rows, w in zip(members, weights, strict=True) if w]
    notes = []
    for q, score in enumerate(scores):
        if np.isfinite(score):
            notes.append(None)
        elif not big:
            notes.append(
                f"too few validation submodels: fewer than {MIN_GROUP} in every p group (raise "
                "validation.n_subsets)"
            )
        elif all(np.ptp(Y[rows, q]) == 0 for rows in big):
            notes.append("constant behaviour on the validation submodels")
        else:
            notes.append("constant prediction: no effect estimated")
    return scores, notes


def lds_interval(
    ame: np.ndarray, unit_masks: np.ndarray, p: np.ndarray, Y: np.ndarray, design: Design
) -> tuple[float, float]:
    """Interval (level ``CI_LEVEL``) for the mean LDS over queries that these estimates reach on
    the design's whole population of subsets.

    The estimand is conditional on the estimates: what the validation sample leaves uncertain.
    A percentile bootstrap undercovers it (resampled rows tie in rank, which pulls every replicate
    down: 0.78 coverage measured at LDS 0.89); this is the delete-one jackknife on the Fisher z
    scale, bias-corrected (z_bc = n z − (n − 1) mean z₍ᵢ₎). Deleting a row changes only its own
    group's correlation, so the n leave-one-out values cost one correlation of a group each.
    Coverage is measured in ``tests/evaluation/test_lds_and_removal.py``.
    """
    groups, _ = p_groups(p, design)
    predicted = predict(ame, unit_masks, p)
    members, weights, r = _group_correlations(predicted, Y, p, groups)
    theta = mean_over_queries(_pooled(weights, r))
    if not math.isfinite(theta):
        return math.nan, math.nan
    leave_one_out = []
    for g, rows in enumerate(members):
        if not weights[g]:  # a group too small to correlate stays so without one more row
            leave_one_out += [theta] * rows.size
            continue
        w = weights.copy()
        w[g] = rows.size - 1 if rows.size - 1 >= MIN_GROUP else 0
        rg = np.repeat(r[None], rows.size, axis=0)  # one copy of every group's r per deletion
        if w[g]:
            kept = np.broadcast_to(rows, (rows.size, rows.size))[~np.eye(rows.size, dtype=bool)]
            kept = kept.reshape(rows.size, rows.size - 1)
            rg[:, g] = _correlation(predicted[kept], Y[kept], p[kept])
        else:
            rg[:, g] = np.nan
        scores = _pooled(w, rg)  # (deletions, n_queries)
        finite = np.isfinite(scores)
        with np.errstate(invalid="ignore"):
            leave_one_out += list(
                np.where(finite.any(1), np.where(finite, scores, 0).sum(1) / finite.sum(1), np.nan)
            )
    z_i = np.arctanh(np.clip(leave_one_out, -Z_CLIP, Z_CLIP))
    n = z_i.size
    z = n * np.arctanh(np.clip(theta, -Z_CLIP, Z_CLIP)) - (n - 1) * z_i.mean()
    se = math.sqrt((n - 1) / n * ((z_i - z_i.mean()) ** 2).sum())
    half = NormalDist().inv_cdf(0.5 + CI_LEVEL / 2) * se
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def mean_over_queries(scores: np.ndarray) -> float:
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else math.nan
