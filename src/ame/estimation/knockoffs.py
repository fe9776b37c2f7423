"""Selection at a controlled false discovery rate: model-X knockoffs and Benjamini–Hochberg.

Knockoffs (method notes §4): every row carries a second, fake mask drawn like the real one; the
LASSO is fitted on [X | X̃] and point n gets ``W_n = max(s β_n, 0) − max(s β̃_n, 0)`` (s = +1 for
points that raise the behaviour, −1 for those that lower it). Knockoff+ selects {W ≥ T} and
controls the FDR at q, but it needs at least 1/q positive statistics to select anything:
:func:`knockoff_can_select` tells when q asks for more than the data offer.

Benjamini–Hochberg runs on the one-sided p-values of the debiased intervals
(:mod:`ame.estimation.intervals`); it controls the FDR at q for independent p-values, which the
randomized design gives (columns independent given p) up to the estimation of the residuals.
"""

from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

from ame.errors import UserError

DIRECTIONS = ("positive", "negative")
RULES = ("knockoff", "bh")


def knockoff_threshold(W: np.ndarray, fdr: float, offset: int = 1) -> float:
    """Knockoff(+) selection threshold.

    ``T = min{t ∈ {|W_n| ≠ 0} : (offset + #{W ≤ −t}) / max(1, #{W ≥ t}) ≤ fdr}``; select W ≥ T.

    Parameters
    ----------
    W : array-like of shape (n_points,)
        Knockoff statistics (large positive: evidence for the real column); NaN entries (points
        left out of the fit) count as 0.
    fdr : float
        Target false discovery rate q.
    offset : {0, 1}
        1 for Knockoff+ (controls the FDR), 0 for Knockoff (controls a modified FDR).

    Returns
    -------
    float
        The threshold, ``inf`` when no t qualifies (nothing is selected).
    """
    W = np.nan_to_num(np.asarray(W, dtype=float).ravel(), nan=0.0)
    ts = np.unique(np.abs(W[W != 0]))
    pos, neg = np.sort(W[W > 0]), np.sort(-W[W < 0])
    n_pos = pos.size - np.searchsorted(pos, ts, side="left")
    n_neg = neg.size - np.searchsorted(neg, ts, side="left")
    ok = (offset + n_neg) / np.maximum(1, n_pos) <= fdr
    return float(ts[ok][0]) if ok.any() else np.inf


def knockoff_statistic(ame: np.ndarray, knockoff_ame: np.ndarray, direction: str) -> np.ndarray:
    """``W = max(s β, 0) − max(s β̃, 0)`` of shape (n_queries, n_points); NaN where ``ame`` is."""
    sign = _sign(direction)
    return np.maximum(sign * ame, 0) - np.maximum(sign * knockoff_ame, 0)


def knockoff_select(W: np.ndarray, fdr: float, plus: bool = True) -> np.ndarray:
    """Points selected by Knockoff(+) at ``fdr``, per query, of shape (n_queries, n_points)."""
    thresholds = np.array([knockoff_threshold(w, fdr, offset=int(bool(plus))) for w in W])
    return np.nan_to_num(W, nan=-np.inf) >= thresholds[:, None]


def knockoff_can_select(W: np.ndarray, fdr: float) -> np.ndarray:
    """Whether Knockoff+ at ``fdr`` could select anything, per query, of shape (n_queries,).

    With k positive statistics the smallest attainable ratio is 1 / k, so Knockoff+ selects
    nothing unless k ≥ 1/q (with q = 0.1: at least 10 points must beat their knockoffs).
    """
    n_positive = (np.nan_to_num(W, nan=0.0) > 0).sum(1)
    return n_positive * fdr >= 1


class KnockoffPowerWarning(UserWarning):
    """Knockoff+ at the requested FDR q cannot select anything: fewer than 1/q W > 0."""


def warn_if_blind(W: np.ndarray, fdr: float, skip: np.ndarray) -> None:
    """Warn (KnockoffPowerWarning) about the queries, except ``skip``, where Knockoff+ is blind."""
    blind = np.flatnonzero(~knockoff_can_select(W, fdr) & ~skip)
    if blind.size:
        needed = math.ceil(1 / fdr) if fdr > 0 else math.inf
        warnings.warn(
            f"select: Knockoff+ at fdr={fdr} needs at least {needed} points with W > 0 to "
            f"select any; queries {blind.tolist()} have fewer and select nothing (use "
            "rule='bh', knockoff_plus=False or a larger fdr)",
            KnockoffPowerWarning,
            stacklevel=3,
        )


def one_sided_pvalues(estimate, stderr, direction: str) -> np.ndarray:
    """p-values of H0: AME ≤ 0 ("positive") or AME ≥ 0 ("negative"), same shape as ``estimate``.

    A zero standard error gives p = 1 for a zero estimate (a degenerate query); NaN stays NaN.
    """
    from scipy.special import ndtr

    z = _sign(direction) * np.asarray(estimate, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(stderr > 0, z / np.where(stderr > 0, stderr, 1.0), np.sign(z) * np.inf)
    z = np.where(np.isnan(z) & ~np.isnan(estimate), -np.inf, z)  # 0 / 0
    return ndtr(-z)


def bh_select(pvalues: np.ndarray, fdr: float) -> np.ndarray:
    """Benjamini–Hochberg step-up at ``fdr`` within every query, of shape (n_queries, n_points).

    NaN p-values (points left out of the fit) are neither counted nor selected.
    """
    pvalues = np.atleast_2d(pvalues)
    out = np.zeros(pvalues.shape, dtype=bool)
    for q, row in enumerate(pvalues):
        valid = np.flatnonzero(~np.isnan(row))
        if not valid.size:
            continue
        order = valid[np.argsort(row[valid], kind="stable")]
        below = row[order] <= fdr * np.arange(1, valid.size + 1) / valid.size
        if below.any():
            out[q, order[: np.flatnonzero(below).max() + 1]] = True
    return out


def check_selection(fdr, direction, rule) -> None:
    """Validate the arguments of a selection."""
    check_fdr(fdr)
    if direction not in DIRECTIONS:
        raise UserError(f"direction: must be one of {DIRECTIONS}, got {direction!r}")
    if rule not in RULES:
        raise UserError(f"rule: must be one of {RULES}, got {rule!r}")


def check_fdr(fdr) -> None:
    if not isinstance(fdr, numbers.Real) or isinstance(fdr, bool) or not 0 <= fdr <= 1:
        raise UserError(f"fdr: must lie in [0, 1], got {fdr!r}")


def _sign(direction: str) -> float:
    return 1.0 if direction == "positive" else -1.0
