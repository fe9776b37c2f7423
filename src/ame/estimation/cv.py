"""Cross-validated LASSO: folds, the λ grid, the CV curve, the λ rule and the bootstrap at λ."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ame.errors import UserError
from ame.estimation.solver import column_scale, lambda_max, lasso_path

_BOOTSTRAP_STEPS = 20


@dataclass
class CVFit:
    """The cross-validated fit of some queries; arrays have one row per query.

    Attributes
    ----------
    lambdas, cv_mse, cv_se : ndarray of shape (n_queries, n_steps)
    index : ndarray of int, shape (n_queries,)
        Chosen step.
    coef : ndarray of shape (n_queries, n_features)
        Full-data coefficients at the chosen step, in the units of X.
    fold_coef : ndarray of shape (n_folds, n_queries, n_features)
        Coefficients of every CV training fit at the chosen step (for cross-fitting).
    n_steps : ndarray of int, shape (n_queries,)
    truncated : ndarray of bool, shape (n_queries,)
    scale : Tensor of shape (n_features,) or None
    """

    lambdas: np.ndarray
    cv_mse: np.ndarray
    cv_se: np.ndarray
    index: np.ndarray
    coef: np.ndarray
    fold_coef: np.ndarray
    n_steps: np.ndarray
    truncated: np.ndarray
    scale: torch.Tensor | None


def sparse_to_dense(index: np.ndarray, coef: np.ndarray, n_features: int) -> np.ndarray:
    """Scatter active-set coefficients into dense rows.

    Parameters
    ----------
    index : ndarray of int, shape (..., width)
        Column of each slot.
    coef : ndarray of shape (..., width)
        Coefficient of each slot; padding slots carry 0, so adding (not assigning) keeps the
        column they point to intact.
    n_features : int

    Returns
    -------
    ndarray of shape (..., n_features)
    """
    out = np.zeros(index.shape[:-1] + (n_features,))
    rows = int(np.prod(index.shape[:-1]))
    flat = out.reshape(rows, n_features)
    np.add.at(flat, (np.arange(rows)[:, None], index.reshape(rows, -1)), coef.reshape(rows, -1))
    return out


def kfold_weights(
    n_rows: int,
    n_folds: int,
    rng: np.random.Generator,
    strata: np.ndarray | None = None,
    units: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Training weights of K random folds plus the full-data fit, and the held-out rows.

    Parameters
    ----------
    n_rows, n_folds : int
    rng : numpy.random.Generator
    strata : ndarray of int, shape (n_rows,), optional
        Bucket of each row: the folds are stratified, each bucket dealt round-robin over the
        folds in random order, so that a bucket of at least 2 units is in every training fold.
    units : ndarray of int, shape (n_rows,), optional
        Rows with equal ids (identical subsets) always share a fold; a unit goes with the stratum
        of its first row.

    Returns
    -------
    weights : ndarray of shape (n_rows, n_folds + 1)
        Column k < K is 0 on fold k and 1 elsewhere; the last column is all ones.
    held_out : ndarray of bool, shape (n_rows, n_folds)
    """
    units = np.arange(n_rows) if units is None else np.unique(units, return_inverse=True)[1]
    strata = np.zeros(n_rows, dtype=int) if strata is None else np.asarray(strata)
    n_units = units.max() + 1
    if n_units < n_folds:
        raise UserError(f"n_folds: {n_folds} folds need as many distinct subsets, got {n_units}")
    first = np.full(n_units, n_rows)
    np.minimum.at(first, units, np.arange(n_rows))
    unit_fold = np.empty(n_units, dtype=int)
    dealt = int(rng.integers(n_folds))
    for stratum in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata[first] == stratum))
        unit_fold[members] = (dealt + np.arange(members.size)) % n_folds
        dealt += members.size
    fold = unit_fold[units]
    held_out = fold[:, None] == np.arange(n_folds)
    weights = np.concatenate([~held_out, np.ones((n_rows, 1), dtype=bool)], axis=1)
    return weights.astype(float), held_out


def ratios(rule, n_lambdas: int, lambda_min_ratio: float) -> np.ndarray:
    """λ / λ_max along the path, decreasing."""
    if isinstance(rule, str):
        return np.geomspace(1.0, lambda_min_ratio, n_lambdas)
    if rule > 0:
        return np.geomspace(1.0, rule, n_lambdas)
    return np.append(np.geomspace(1.0, lambda_min_ratio, n_lambdas - 1), 0.0)


def choose(rule, cv_mse: np.ndarray, cv_se: np.ndarray) -> np.ndarray:
    """Index of the chosen λ of every query (last step for a fixed rule)."""
    if not isinstance(rule, str):
        return np.full(len(cv_mse), cv_mse.shape[1] - 1)
    best = np.nanargmin(cv_mse, axis=1)
    if rule == "min":
        return best
    rows = np.arange(len(best))
    bound = cv_mse[rows, best] + cv_se[rows, best]
    return (cv_mse <= bound[:, None]).argmax(1)


def cross_validate(est, X, Y, groups, weights, held_out) -> CVFit:
    """Run the CV path of the queries of Y (n_subsets, n_queries) with ``est``'s settings."""
    device = X.device
    groups_t = torch.as_tensor(groups, device=device)
    Yt = torch.as_tensor(Y, device=device)
    scale = column_scale(X, groups_t) if est.standardize else None
    lam_max = lambda_max(X, Yt, groups_t, scale)
    grid = ratios(est.lambda_rule, est.n_lambdas, est.lambda_min_ratio)
    lambdas = lam_max[None, :] * torch.as_tensor(grid, device=device)[:, None]
    cv_rule = isinstance(est.lambda_rule, str)
    path = lasso_path(
        X,
        Yt,
        torch.as_tensor(weights),
        lambdas,
        groups=groups_t,
        scale=scale,
        held_out=torch.as_tensor(held_out),
        keep_path=slice(None),
        tol=est.tol,
        max_iter=est.max_iter,
        patience=est.patience if cv_rule else None,
        max_active=est.max_active,
    )
    if not cv_rule and path.n_solved.min() < est.n_lambdas:
        raise UserError(
            f"max_active: the path stopped at λ step {path.n_solved.min()} of "
            f"{est.n_lambdas}, before the penalty fixed by lambda_rule={est.lambda_rule}"
        )
    cv_mse = path.cv_mse.mean(1).T
    cv_se = path.cv_mse.std(1, ddof=1).T / np.sqrt(est.n_folds)
    index = choose(est.lambda_rule, cv_mse, cv_se)
    coef = np.zeros((est.n_folds + 1, len(index), X.shape[1]))  # (n_fits, n_queries, P)
    for q, t in enumerate(index):
        coef[:, q] = sparse_to_dense(path.path_index[t][:, q], path.path_coef[t][:, q], X.shape[1])
    return CVFit(
        path.lambdas.T,
        cv_mse,
        cv_se,
        index,
        coef[-1],
        coef[:-1],
        path.n_solved,
        path.truncated,
        scale,
    )


def cross_validate_live(est, X, Y, live, groups, weights, held_out) -> tuple[CVFit, CVFit | None]:
    """:func:`cross_validate` on the queries ``live`` (indices), the others left unfitted.

    Returns the fit of all queries (zero coefficients, λ = 0, NaN CV errors, 0 steps where not
    fitted) and the fit of the live queries alone (None when there is none).
    """
    Q, P, K = Y.shape[1], X.shape[1], est.n_folds
    fit = (
        None
        if not live.size or not P
        else cross_validate(est, X, Y[:, live], groups, weights, held_out)
    )
    if fit is not None and live.size == Q:
        return fit, fit
    steps = 1 if fit is None else fit.lambdas.shape[1]
    full = CVFit(
        lambdas=np.zeros((Q, steps)),
        cv_mse=np.full((Q, steps), np.nan),
        cv_se=np.full((Q, steps), np.nan),
        index=np.zeros(Q, dtype=int),
        coef=np.zeros((Q, P)),
        fold_coef=np.zeros((K, Q, P)),
        n_steps=np.zeros(Q, dtype=int),
        truncated=np.zeros(Q, dtype=bool),
        scale=None if fit is None else fit.scale,
    )
    if fit is not None:
        for name in ("lambdas", "cv_mse", "cv_se", "index", "coef", "n_steps", "truncated"):
            getattr(full, name)[live] = getattr(fit, name)
        full.fold_coef[:, live] = fit.fold_coef
    return full, fit


def bootstrap_stderr(est, X, Y, groups, fit: CVFit, rng, ame_scale: float) -> np.ndarray:
    """Standard deviation over bootstrap refits at the chosen λ, shape (n_queries, n_columns).

    Replicates are multinomial row weights, solved a chunk of ``n_folds + 1`` at a time (the
    memory of the CV fit), each along a short warm-started path from λ_max down to λ. The spread
    covers the sampling of the subsets and the training noise, conditional on λ; it omits the
    shrinkage bias, and a point whose estimate is 0 in most replicates shows (near) zero spread.
    """
    m, P = X.shape
    Q = Y.shape[1]
    steps = min(_BOOTSTRAP_STEPS, int(fit.index.max()) + 1)
    picks = np.rint(np.linspace(0, fit.index, max(steps, 2))).astype(int)
    lambdas = torch.as_tensor(fit.lambdas[np.arange(Q), picks], device=X.device)
    total, total_sq = np.zeros((Q, P)), np.zeros((Q, P))
    chunk = est.n_folds + 1
    for start in range(0, est.n_bootstrap, chunk):
        count = min(chunk, est.n_bootstrap - start)
        weights = rng.multinomial(m, np.full(m, 1.0 / m), size=count).T.astype(float)
        path = lasso_path(
            X,
            torch.as_tensor(Y, device=X.device),
            torch.as_tensor(weights),
            lambdas,
            groups=torch.as_tensor(groups, device=X.device),
            scale=fit.scale,
            tol=est.tol,
            max_iter=est.max_iter,
            max_active=est.max_active,
        )
        if path.n_solved.min() < len(lambdas):
            warnings.warn(
                "stderr_: bootstrap refits stopped above the chosen λ (max_active reached); "
                "their spread describes a sparser fit",
                stacklevel=3,
            )
        coef = ame_scale * sparse_to_dense(path.final_index, path.final_coef, P)
        total += coef.sum(0)
        total_sq += (coef**2).sum(0)
    var = (total_sq - total**2 / est.n_bootstrap) / max(est.n_bootstrap - 1, 1)
    return np.sqrt(np.clip(var, 0.0, None))
