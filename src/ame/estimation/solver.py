"""Batched LASSO paths in torch: many queries and many row weightings of one design at once.

Every fit solves, for one query column y and one row-weight vector w,

    min_β  1/(2 Σ_i w_i) Σ_i w_i (y_i − ȳ_g(i) − (x_i − μ_g(i)) β)² + λ Σ_j scale_j |β_j|

where ȳ_g, μ_g are the w-weighted means inside bucket g: one unpenalized indicator per bucket, no
global intercept. Cross-validation folds (:func:`ame.estimation.cv.kfold_weights`), the
full-data fit and bootstrap replicates are all just columns of a row-weight matrix
(n_subsets × n_fits), so one pass over the design serves them all.

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

from ame.estimation.active_set import ActiveSets

_CORRELATION_CHUNK_BYTES = 64 << 20


@dataclass
class LassoPath:
    """What :func:`lasso_path` computed.

    Attributes
    ----------
    lambdas : ndarray of shape (n_steps, n_queries)
        Penalties of the steps taken (scaled units); shorter than requested when every query
        stopped early.
    n_solved : ndarray of int, shape (n_queries,)
        Steps each query completed; a query stops at ``patience`` or ``max_active``.
    cv_mse : ndarray of shape (n_steps, n_held_out, n_queries) or None
        Mean squared held-out error of each of the first ``n_held_out`` fits; NaN at the steps
        after a query stopped early (``patience``).
    path_index, path_coef : list of ndarray
        Per step, the active columns (n_queries, width) and coefficients (n_queries, width) of the
        fit named by ``keep_path`` (with a leading fit axis when it is a slice), in the units of
        X (meaningful up to each query's ``n_solved``).
    final_index, final_coef : ndarray of shape (n_fits, n_queries, width)
        Active columns and coefficients of every fit at each query's last completed step.
    truncated : ndarray of bool, shape (n_queries,)
        Queries whose path ``max_active`` stopped (before a step that would exceed it).
    """

    lambdas: np.ndarray
    n_solved: np.ndarray
    cv_mse: np.ndarray | None
    final_index: np.ndarray
    final_coef: np.ndarray
    truncated: np.ndarray | None = None
    path_index: list = field(default_factory=list)
    path_coef: list = field(default_factory=list)


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

    A bucket without weight in a fit (a CV fold whose training rows miss it) gets the fit's
    overall weighted mean: its held-out rows are scored against that, not against an uncentred y.

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
    sums = (onehot.T @ (weights[:, :, None] * values).reshape(m, F * Q)).reshape(-1, F, Q)
    group_w = (onehot.T @ weights)[:, :, None]
    overall = sums.sum(0) / group_w.sum(0).clamp_min(1e-300)  # (F, Q)
    means = torch.where(group_w > 0, sums / group_w.clamp_min(1e-300), overall)
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


def _mask(queries: list[int], n_queries: int, device) -> torch.Tensor:
    """Boolean mask of shape (n_queries,) that is True on ``queries``."""
    mask = torch.zeros(n_queries, dtype=torch.bool, device=device)
    mask[queries] = True
    return mask


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


def lasso_path(
    X: torch.Tensor,
    Y: torch.Tensor,
    weights: torch.Tensor,
    lambdas: torch.Tensor,
    *,
    groups: torch.Tensor | None = None,
    scale: torch.Tensor | None = None,
    held_out: torch.Tensor | None = None,
    keep_path: int | slice | None = None,
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
    keep_path : int or slice, optional
        Fit (or fits, e.g. ``slice(None)`` for all) whose coefficients are recorded at every
        step.
    tol : float
        KKT tolerance, relative to each query's first penalty ``lambdas[0]``.
    max_iter : int
        FISTA iteration limit per restricted solve.
    patience : int, optional
        A query stops descending once its mean held-out error has not improved for ``patience``
        steps (the rest of its path cannot change λ_min or λ_1se); the path ends when all have
        stopped. After its last step a query has NaN held-out errors, and its ``path_coef``
        entries carry no meaning. Needs ``held_out``.
    max_active : int, optional
        A query stops (with a warning) before a step that would give one of its fits more active
        columns; this bounds the memory of its Grams, which grows with the square. The first
        step is never refused.

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
    Y = Y.to(device=device, dtype=torch.float64)
    yc = center(Y[:, None, :].expand(m, n_fits, n_queries), w, onehot)
    scale = (
        torch.ones(X.shape[1], dtype=torch.float64, device=device)
        if scale is None
        else scale.double()
    )
    lambdas = lambdas.to(device=device, dtype=torch.float64)
    tol_abs = tol * lambdas[0].clamp_min(1e-300)
    active = ActiveSets(X, w, onehot, w[:, :, None] * yc, scale)
    held = None if held_out is None else held_out.to(device=device, dtype=torch.float64)
    path_index, path_coef, mse_steps = [], [], []
    best_mse = torch.full((n_queries,), torch.inf, dtype=torch.float64, device=device)
    best_step = torch.zeros(n_queries, dtype=torch.long, device=device)
    n_solved = np.zeros(n_queries, dtype=int)
    last = [(np.zeros((n_fits, 0), dtype=int), np.zeros((n_fits, 0)))] * n_queries
    capped: list[int] = []
    corr = _abs_correlation(X, w[:, :, None] * yc / total[None, :, None], scale)
    running = list(range(n_queries))  # queries still descending the path
    for t in range(lambdas.shape[0]):
        lam, limit = lambdas[t], max_active if t else None
        screen = corr > (2 * lam - lambdas[max(t - 1, 0)]).to(corr.dtype)
        _, over = active.add(screen & _mask(running, n_queries, device), limit)
        while True:  # solve, check the KKT conditions of all columns, add violators
            running = [q for q in running if q not in over]
            capped += over
            if not running:
                break
            active.solve(lam, tol_abs, max_iter, running)
            solved, fitted = running, active.fitted(running)
            residual = center(Y[:, None, running] - fitted, w, onehot)
            weighted = w[:, :, None] * residual / total[None, :, None]
            corr[:, :, running] = _abs_correlation(X, weighted, scale)
            violation = corr > (lam + tol_abs).to(corr.dtype)
            added, over = active.add(violation & _mask(running, n_queries, device), limit)
            if added == 0:  # no violator left, except in queries refused by max_active
                running = [q for q in running if q not in over]
                capped += over
                break
        if not running:
            break
        # the queries of ``running`` have reached the KKT conditions at this λ
        index, coef = (a.cpu().numpy() for a in active.coefficients())
        n_solved[running] = t + 1
        for q in running:
            last[q] = (index[:, q], coef[:, q])
        if keep_path is not None:
            path_index.append(index[keep_path])
            path_coef.append(coef[keep_path])
        if held is not None:
            K, cols = held.shape[1], [solved.index(q) for q in running]
            sq = torch.full((K, n_queries), torch.nan, dtype=torch.float64, device=device)
            sq[:, running] = (
                torch.einsum("mk,mkq->kq", held, residual[:, :K, cols] ** 2) / held.sum(0)[:, None]
            )
            mse_steps.append(sq.cpu().numpy())
            improved = sq.mean(0) < best_mse
            best_mse = torch.where(improved, sq.mean(0), best_mse)
            best_step = torch.where(improved, t, best_step)
            if patience is not None:
                running = [q for q in running if t - int(best_step[q]) < patience]
        if not running:
            break
    if capped:
        warnings.warn(
            f"LASSO path: queries {sorted(capped)} stopped before a step that would take a fit "
            f"past max_active={max_active} active columns",
            stacklevel=2,
        )
    width = max(index.shape[1] for index, _ in last)
    truncated = np.zeros(n_queries, dtype=bool)
    truncated[capped] = True
    return LassoPath(
        lambdas=lambdas[: n_solved.max()].cpu().numpy(),
        n_solved=n_solved,
        cv_mse=np.stack(mse_steps) if mse_steps else None,
        final_index=np.stack([np.pad(i, [(0, 0), (0, width - i.shape[1])]) for i, _ in last], 1),
        final_coef=np.stack([np.pad(c, [(0, 0), (0, width - c.shape[1])]) for _, c in last], 1),
        truncated=truncated,
        path_index=path_index,
        path_coef=path_coef,
    )
