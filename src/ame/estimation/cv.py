"""Cross-validated LASSO: the λ grid, the CV curve, the λ rule and the bootstrap at that λ."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ame.estimation.solver import column_scale, lambda_max, lasso_path, sparse_to_dense

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
        raise ValueError(
            f"max_active: the path stopped at λ step {path.n_solved.min()} of "
            f"{est.n_lambdas}, before the penalty fixed by lambda_rule={est.lambda_rule}"
        )
    cv_mse = path.cv_mse.mean(1).T
    cv_se = path.cv_mse.std(1, ddof=1).T / np.sqrt(est.n_folds)
    index = choose(est.lambda_rule, cv_mse, cv_se)
    coef = np.stack(  # (n_fits, n_queries, n_features)
        [
            sparse_to_dense(path.path_index[t][:, q], path.path_coef[t][:, q], X.shape[1])
            for q, t in enumerate(index)
        ],
        1,
    )
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
