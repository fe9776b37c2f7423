"""Checks of the estimator's parameters and data; every message names the argument."""

from __future__ import annotations

import numbers

import numpy as np

from ame.errors import UserError
from ame.estimation.knockoffs import RULES, check_fdr

FEATURIZATIONS = ("auto", "inverse", "centered")
LAMBDA_RULES = ("1se", "min")
ROBUST = (None, "winsorize")


def check_int(name: str, value, low: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise UserError(f"{name}: must be an integer >= {low}, got {value!r}")


def check_params(est) -> None:
    """Validate the constructor arguments of an :class:`AMEEstimator`."""
    if est.featurization not in FEATURIZATIONS:
        raise UserError(
            f"featurization: must be one of {FEATURIZATIONS}, got {est.featurization!r}"
        )
    rule = est.lambda_rule
    if isinstance(rule, str):
        if rule not in LAMBDA_RULES:
            raise UserError(
                f"lambda_rule: must be one of {LAMBDA_RULES} or a float >= 0, got {rule!r}"
            )
    elif not isinstance(rule, numbers.Real) or isinstance(rule, bool) or not 0 <= rule < 1:
        raise UserError(f"lambda_rule: a fixed rule must be a float in [0, 1), got {rule!r}")
    check_int("n_folds", est.n_folds, 2)
    check_int("n_lambdas", est.n_lambdas, 2)
    check_int("n_bootstrap", est.n_bootstrap, 0)
    check_int("n_p_bins", est.n_p_bins, 1)
    check_int("patience", est.patience, 1)
    check_int("max_active", est.max_active, 1)
    check_int("max_iter", est.max_iter, 1)
    if not 0 < est.lambda_min_ratio < 1:
        raise UserError(f"lambda_min_ratio: must lie in (0, 1), got {est.lambda_min_ratio}")
    if not est.tol > 0:
        raise UserError(f"tol: must be positive, got {est.tol}")
    check_fdr(est.fdr)
    if est.selection_rule not in RULES:
        raise UserError(f"selection_rule: must be one of {RULES}, got {est.selection_rule!r}")
    level = est.ci_level
    if not isinstance(level, numbers.Real) or isinstance(level, bool) or not 0 < level < 1:
        raise UserError(f"ci_level: must lie in (0, 1), got {level!r}")
    if est.robust not in ROBUST:
        raise UserError(f"robust: must be one of {ROBUST}, got {est.robust!r}")
    if not isinstance(est.outlier_z, numbers.Real) or not est.outlier_z > 0:
        raise UserError(f"outlier_z: must be a positive number, got {est.outlier_z!r}")


def check_data(masks, p, Y, n_points, subset_index):
    """Check shapes, types and values; return masks, p (float64), Y (float64, 2-D), N, index."""
    masks = np.asarray(masks)
    if masks.ndim != 2:
        raise UserError(
            f"masks: expected a 2-D array (n_subsets, n_points), got shape {masks.shape}"
        )
    if masks.dtype == np.uint8:
        if n_points is None:
            raise UserError("n_points: required with bit-packed uint8 masks")
        if masks.shape[1] != -(-n_points // 8):
            raise UserError(
                f"masks: {masks.shape[1]} bytes per row do not hold n_points={n_points} bits"
            )
    elif masks.dtype == bool:
        if n_points is not None and n_points != masks.shape[1]:
            raise UserError(f"n_points: {n_points} differs from masks.shape[1]={masks.shape[1]}")
        n_points = masks.shape[1]
    else:
        raise UserError(f"masks: expected bool or bit-packed uint8, got dtype {masks.dtype}")
    m = masks.shape[0]
    p = np.asarray(p, dtype=float)
    if p.shape != (m,):
        raise UserError(f"p: expected shape ({m},) to match masks, got {p.shape}")
    if not np.all((p > 0) & (p < 1)):
        raise UserError("p: every inclusion probability must lie strictly inside (0, 1)")
    Y = np.asarray(Y, dtype=float)
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.ndim != 2 or Y.shape[0] != m:
        raise UserError(
            f"Y: expected shape ({m},) or ({m}, n_queries) to match masks, got {Y.shape}"
        )
    if not np.all(np.isfinite(Y)):
        raise UserError("Y: contains NaN or infinite values")
    if n_points < 1 or Y.shape[1] < 1:
        raise UserError("masks, Y: need at least one point and one query")
    if subset_index is None:
        subset_index = np.arange(m)
    else:
        subset_index = np.asarray(subset_index)
        if subset_index.shape != (m,) or not np.issubdtype(subset_index.dtype, np.integer):
            raise UserError(f"subset_index: expected {m} integers, one per row of masks")
    return masks, p, Y, n_points, subset_index


def check_least_squares(rule, n_folds: int, n_columns: int | None, n_subsets: int) -> None:
    """K folds need K subsets; λ = 0 needs more training rows per fold than columns plus buckets."""
    if n_folds > n_subsets:
        raise UserError(f"n_folds: {n_folds} folds need at least as many subsets, got {n_subsets}")
    if n_columns is None:
        return
    train_rows = n_subsets - -(-n_subsets // n_folds)
    if not isinstance(rule, str) and rule == 0 and n_columns >= train_rows:
        raise UserError(
            f"lambda_rule: 0 (least squares) needs more training rows per fold ({train_rows}) "
            f"than columns plus buckets ({n_columns}); use a positive rule or more subsets"
        )
