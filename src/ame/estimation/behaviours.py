"""Checks of the behaviours before the fit: degenerate queries and extreme values.

- A behaviour that is constant, or a function of p only (a saturated probability), has nothing
  left once the bucket means are removed; its LASSO would fit float64 rounding noise (λ_max ≈
  1e-17) and the knockoffs would select from it. Such queries are *degenerate*: AMEs 0, no fit.
- A few extreme values (a diverged log-probability) dominate a squared loss and can empty the fit.
  The robust z-score ``(y − bucket median) / s`` (s: a robust scale, see :func:`robust_z`) flags
  them per query; ``winsorize`` clips them at ``± z · s`` around the bucket medians (the robust
  option of the estimator, whose AMEs are then those of the clipped behaviour).
"""

from __future__ import annotations

import warnings

import numpy as np

DEGENERATE_RTOL = 1e-9
_MAD_TO_SD = 1.4826
_TRIM = 0.01


class OutlierWarning(UserWarning):
    """Some behaviours have values far outside their bulk (|robust z| > outlier_z)."""


def warn_outliers(n_outliers: np.ndarray, z_max: float) -> None:
    """Warn about the queries with extreme values when they are fitted as they are."""
    hit = np.flatnonzero(n_outliers)
    if hit.size:
        warnings.warn(
            f"Y: queries {hit.tolist()} have {n_outliers[hit].tolist()} values beyond "
            f"{z_max:g} robust standard deviations of their bucket medians; a few extreme values "
            "can empty the fit (robust='winsorize' clips them)",
            OutlierWarning,
            stacklevel=3,
        )


def bucket_center(Y: np.ndarray, groups: np.ndarray, how: str = "mean") -> np.ndarray:
    """Bucket means (or medians) of every query, per row, of shape (n_subsets, n_queries)."""
    out = np.empty_like(Y)
    for g in range(groups.max() + 1):
        rows = groups == g
        out[rows] = Y[rows].mean(0) if how == "mean" else np.median(Y[rows], axis=0)
    return out


def degenerate(Y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Queries with a negligible bucket-centred behaviour, of shape (n_queries,), bool.

    Negligible: every centred value is within ``DEGENERATE_RTOL`` of the largest |y| of the query
    (float64 rounding of a constant or p-only behaviour), or the behaviour is all zero.
    """
    centred = np.abs(Y - bucket_center(Y, groups)).max(0)
    return centred <= DEGENERATE_RTOL * np.abs(Y).max(0)


def robust_z(Y: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust z-scores of every row and query, with the bucket medians and scales behind them.

    Returns
    -------
    z : ndarray of shape (n_subsets, n_queries)
        ``(y − bucket median) / s`` with s the larger of 1.4826 · median |y − bucket median|
        (pooled over the buckets) and the standard deviation of the deviations between their
        1% and 99% quantiles (the MAD alone collapses on behaviours with a point mass, such as
        a probability that is often exactly 0); z = 0 where s = 0.
    medians : ndarray of shape (n_subsets, n_queries)
    scale : ndarray of shape (n_queries,)
        s; 0 where the behaviour has no spread around its bucket medians.
    """
    medians = bucket_center(Y, groups, how="median")
    dev = Y - medians
    lo, hi = np.quantile(dev, [_TRIM, 1 - _TRIM], axis=0)
    inner = np.where((dev >= lo) & (dev <= hi), dev, np.nan)
    s = np.maximum(_MAD_TO_SD * np.median(np.abs(dev), axis=0), np.nanstd(inner, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(s > 0, dev / np.where(s > 0, s, 1.0), 0.0)
    return z, medians, s


def winsorize(Y: np.ndarray, groups: np.ndarray, z_max: float) -> np.ndarray:
    """The behaviours with every |robust z| above ``z_max`` clipped to ``z_max``."""
    _, medians, s = robust_z(Y, groups)
    return medians + np.clip(Y - medians, -z_max * s, z_max * s)
