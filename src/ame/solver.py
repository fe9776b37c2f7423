"""Batched LASSO paths in torch: many queries and many row weightings of one design at once.

Every fit solves, for one query column y and one row-weight vector w,

    min_β  1/(2 Σ_i w_i) Σ_i w_i (y_i − ȳ_g(i) − (x_i − μ_g(i)) β)² + λ Σ_j scale_j |β_j|

where ȳ_g, μ_g are the w-weighted means inside bucket g: one unpenalized indicator per bucket, no
global intercept. Cross-validation folds, the full-data fit and bootstrap replicates are all just
columns of a row-weight matrix (n_subsets × n_fits), so one pass over the design serves them all.

Per λ step the solver (1) screens columns with the sequential strong rule, (2) solves the restricted
problems on per-fit active sets with cached float64 Grams by batched FISTA (:mod:`ame.active_set`)
and (3) checks the KKT conditions of *every* column with one matrix product ``X^T R`` for all fits
and queries (R holds the weighted, bucket-centered residuals), adding any violators and
re-solving. Because ``Σ_{i∈g} w_i r_i = 0`` for centered residuals, ``X^T R`` equals the
correlation with the centered design, which is therefore never formed: the design X is read in
place, never copied per fit or thread.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from ame.active_set import ActiveSets

_CORRELATION_CHUNK_BYTES = 64 << 20


@dataclass
class LassoPath:
    """What :func:`lasso_path` computed.

    Attributes
    ----------
    lambdas : ndarray of shape (n_steps, n_queries)
        Penalties solved (scaled units); shorter than requested when the path stopped early.
    cv_mse : ndarray of shape (n_steps, n_held_out, n_queries) or None
        Mean squared held-out error of each of the first ``n_held_out`` fits.
    path_index, path_coef : list of ndarray
        Per step, the active columns (n_queries, width) and coefficients (n_queries, width) of the
        fit named by ``keep_path``, in the units of X.
    final_index, final_coef : ndarray of shape (n_fits, n_queries, width)
        Active columns and coefficients of every fit at the last step.
    """

    lambdas: np.ndarray
    cv_mse: np.ndarray | None
    final_index: np.ndarray
    final_coef: np.ndarray
    path_index: list = field(default_factory=list)
    path_coef: list = field(default_factory=list)


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


def group_onehot(
    groups: torch.Tensor | None, n_rows: int, device, dtype=torch.float64
) -> torch.Tensor:
    """Bucket indicators of shape (n_rows, n_groups); a single bucket when ``groups`` is None."""
    if groups is None:
        return torch.ones(n_rows, 1, dtype=dtype, device=device)
    groups = torch.as_tensor(groups, device=device)
    return torch.nn.functional.one_hot(groups.long()).to(dtype)


def center(values: torch.Tensor, weights: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """Subtract the weighted bucket means of every fit.

    Parameters
    ----------
    values : Tensor of shape (n_subsets, n_fits, n_queries)
    weights : Tensor of shape (n_subsets, n_fits)
    onehot : Tensor of shape (n_subsets, n_groups)

    Returns
    -------
    Tensor of shape (n_subsets, n_fits, n_queries)
    """
    m, F, Q = values.shape
    sums = onehot.T @ (weights[:, :, None] * values).reshape(m, F * Q)
    group_w = (onehot.T @ weights)[:, :, None]
    means = torch.where(group_w > 0, sums.reshape(-1, F, Q) / group_w.clamp_min(1e-300), 0.0)
    return values - (onehot @ means.reshape(-1, F * Q)).reshape(m, F, Q)


def column_scale(X: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
    """Standard deviation of every column inside buckets (pooled), of shape (n_features,).

    Columns without spread get scale 1: they are constant within buckets, so the bucket indicators
    explain them and they can never enter the model.
    """
    m, P = X.shape
    onehot = group_onehot(groups, m, X.device)
    counts = onehot.sum(0)
    out = torch.empty(P, dtype=torch.float64, device=X.device)
    step = max(1, _CORRELATION_CHUNK_BYTES // (8 * m))
    for s in range(0, P, step):
        block = X[:, s : s + step].double()
        means = (onehot.T @ block) / counts[:, None]
        out[s : s + step] = ((block - onehot @ means) ** 2).sum(0) / m
    out = out.sqrt()
    return torch.where(out > 1e-12, out, 1.0)


def _abs_correlation(X, residual, scale):
    """``|x_j^T r_{f,q}| / scale_j`` for every column, fit and query, in column chunks.

    Parameters
    ----------
    X : Tensor of shape (n_subsets, n_features)
    residual : Tensor of shape (n_subsets, n_fits, n_queries)
    scale : Tensor of shape (n_features,)

    Returns
    -------
    Tensor of shape (n_features, n_fits, n_queries), in the dtype of X
    """
    m, P = X.shape
    F, Q = residual.shape[1:]
    R = residual.reshape(m, F * Q).to(X.dtype)
    inv_scale = (1.0 / scale).to(X.dtype)
    out = torch.empty(P, F, Q, dtype=X.dtype, device=X.device)
    step = max(1, _CORRELATION_CHUNK_BYTES // (4 * F * Q))
    for s in range(0, P, step):
        block = (X[:, s : s + step].T @ R).reshape(-1, F, Q).abs_()
        out[s : s + step] = block * inv_scale[s : s + step, None, None]
    return out


def lambda_max(X, Y, groups=None, scale=None) -> torch.Tensor:
    """Smallest penalty at which the full-data fit of each query is zero, of shape (n_queries,).

    ``λ_max,q = max_j |x_j^T y_c,q| / (n scale_j)`` with y centered inside buckets (glmnet's rule).
    """
    m = X.shape[0]
    onehot = group_onehot(groups, m, X.device)
    ones = torch.ones(m, 1, dtype=torch.float64, device=X.device)
    yc = center(Y.double()[:, None, :], ones, onehot) / m
    scale = torch.ones(X.shape[1], dtype=torch.float64, device=X.device) if scale is None else scale
    return _abs_correlation(X, yc, scale).amax(0)[0].double()


def kfold_weights(
    n_rows: int, n_folds: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training weights of K random folds plus the full-data fit, and the held-out rows.

    Returns
    -------
    weights : ndarray of shape (n_rows, n_folds + 1)
        Column k < K is 0 on fold k and 1 elsewhere; the last column is all ones.
    held_out : ndarray of bool, shape (n_rows, n_folds)
    """
    fold = np.empty(n_rows, dtype=int)
    fold[rng.permutation(n_rows)] = np.arange(n_rows) % n_folds
    held_out = fold[:, None] == np.arange(n_folds)
    weights = np.concatenate([~held_out, np.ones((n_rows, 1), dtype=bool)], axis=1)
    return weights.astype(float), held_out


def lasso_path(
    X: torch.Tensor,
    Y: torch.Tensor,
    weights: torch.Tensor,
    lambdas: torch.Tensor,
    *,
    groups: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    held_out: torch.Tensor | None = None,
    keep_path: int | None = None,
    tol: float = 1e-4,
    max_iter: int = 10_000,
    patience: int | None = None,
    max_active: int | None = None,
) -> LassoPath:
    """Solve the LASSO path of every (query, row-weighting) pair together, warm-started.

    Parameters
    ----------
    X : Tensor of shape (n_subsets, n_features)
        Design, float32 or float64, on the device where the work should happen.
    Y : Tensor of shape (n_subsets, n_queries)
        Responses.
    weights : Tensor of shape (n_subsets, n_fits)
        Non-negative row weights; each column is one fit (a CV training fold, the full data, a
        bootstrap replicate).
    lambdas : Tensor of shape (n_steps, n_queries)
        Decreasing penalties of each query, in scaled units; all fits of a query share them.
    groups : Tensor of int of shape (n_subsets,), optional
        Bucket of each row (unpenalized indicators). None means a single intercept.
    scale : Tensor of shape (n_features,), optional
        Column scales: the penalty applies to ``β * scale`` (``column_scale`` standardizes).
    held_out : Tensor of bool of shape (n_subsets, n_held_out), optional
        Held-out rows of the first ``n_held_out`` fits, for the cross-validation error.
    keep_path : int, optional
        Fit whose coefficients are recorded at every step.
    tol : float
        KKT tolerance, relative to each query's first penalty ``lambdas[0]``.
    max_iter : int
        FISTA iteration limit per restricted solve.
    patience : int, optional
        Stop once every query's mean held-out error has not improved for ``patience`` steps: the
        rest of the path cannot change λ_min or λ_1se. Needs ``held_out``.
    max_active : int, optional
        Stop (with a warning) after a step where some fit has more active columns; bounds the
        memory of the Grams, which grows with its square.

    Returns
    -------
    LassoPath
    """
    m = X.shape[0]
    n_queries, n_fits = Y.shape[1], weights.shape[1]
    device = X.device
    onehot = group_onehot(groups, m, device)
    w = weights.to(device=device, dtype=torch.float64)
    total = w.sum(0)
    yc = center(
        Y.to(device=device, dtype=torch.float64)[:, None, :].expand(m, n_fits, n_queries), w, onehot
    )
    scale = (
        torch.ones(X.shape[1], dtype=torch.float64, device=device)
        if scale is None
        else scale.double()
    )
    lambdas = lambdas.to(device=device, dtype=torch.float64)
    tol_abs = tol * lambdas[0].clamp_min(1e-300)
    active = ActiveSets(X, w, onehot, w[:, :, None] * yc, scale)
    held = None if held_out is None else held_out.to(device=device, dtype=torch.float64)
    result = LassoPath(lambdas=None, cv_mse=None, final_index=None, final_coef=None)
    mse_steps = []
    best_mse = torch.full((n_queries,), torch.inf, dtype=torch.float64, device=device)
    best_step = torch.zeros(n_queries, dtype=torch.long, device=device)
    corr = _abs_correlation(X, w[:, :, None] * yc / total[None, :, None], scale)
    for t in range(lambdas.shape[0]):
        lam = lambdas[t]
        active.add(corr > (2 * lam - lambdas[max(t - 1, 0)]).to(corr.dtype))
        while True:
            active.solve(lam, tol_abs, max_iter)
            index, coef = active.coefficients()
            residual = center(Y.to(torch.float64)[:, None, :] - active.fitted(), w, onehot)
            corr = _abs_correlation(X, w[:, :, None] * residual / total[None, :, None], scale)
            if not active.add(corr > (lam + tol_abs).to(corr.dtype)):
                break
        if keep_path is not None:
            result.path_index.append(index[keep_path].cpu().numpy())
            result.path_coef.append(coef[keep_path].cpu().numpy())
        if held is not None:
            K = held.shape[1]
            sq = torch.einsum("mk,mkq->kq", held, residual[:, :K] ** 2) / held.sum(0)[:, None]
            mse_steps.append(sq.cpu().numpy())
            improved = sq.mean(0) < best_mse
            best_mse = torch.where(improved, sq.mean(0), best_mse)
            best_step = torch.where(improved, t, best_step)
            if patience is not None and bool((t - best_step >= patience).all()):
                break
        if max_active is not None and active.width > max_active and t + 1 < lambdas.shape[0]:
            warnings.warn(
                f"LASSO path stopped after {t + 1} of {lambdas.shape[0]} penalties: a fit has "
                f"{active.width} > max_active={max_active} active columns",
                stacklevel=2,
            )
            break
    result.lambdas = lambdas[: t + 1].cpu().numpy()
    result.cv_mse = np.stack(mse_steps) if mse_steps else None
    result.final_index, result.final_coef = index.cpu().numpy(), coef.cpu().numpy()
    return result
