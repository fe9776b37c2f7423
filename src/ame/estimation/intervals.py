"""Confidence intervals and p-values: a debiased LASSO with the design's known covariance.

The experiment is randomized: given p_i, the columns of row i are independent with mean 0, and
``E[X_in Y_i | p_i] = d_i AME_n(L_{p_i})`` with d_i = 1 (inverse features) or p_i(1−p_i)
(centered ones). So for *any* coefficients β̂ that did not see row i and any function g of p,

    z_in = X_in (y_i − g(p_i) − Σ_{j≠n} X_ij β̂_j)

has ``E[z_in | p_i] = d_i AME_n(L_{p_i})``: the other points' fitted effects only remove variance
(a control variate), they cannot bias point n. The estimate is ``θ_n = Σ_i z_in / Σ_i d_i``, with
β̂ the LASSO fit (real and knockoff columns, at the chosen λ) of the CV fold that held row i out
and g the bucket means of that fit's training residuals. Cross-fitting keeps z_in unbiased
whatever λ selected (with the full-data fit instead, small fixed λ made the null p-values
anti-conservative). It is the one-step debiased LASSO ``β̂ + Σ⁻¹ Xᵀ r / m`` with the known,
diagonal Σ = E[XᵀX]/m (the diagonal of XᵀX/m taken from the data): it undoes the shrinkage. It
estimates the same semivalue as ``ame_`` (the mean of AME(L_p) over the design's p for inverse
features, the p(1−p)-tilted mean for centered ones) and needs no m > N.

Standard errors treat the rows as independent draws (ratio estimator: influence
``(z_in − θ_n d_i) / mean(d)``), so they cover the sampling of p, of the subsets and the training
noise of the submodels; the fold fits add no bias, only a weak dependence between rows that the
formula ignores. For discrete designs the same sums inside one bucket give AME_n(L_p) at each p
of the grid: every weighted Banzhaf value of the grid, with its interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import ndtr, ndtri

_CHUNK_BYTES = 64 << 20


@dataclass
class Intervals:
    """What :func:`debiased` computed; arrays of shape (n_queries, n_points) unless noted.

    ``per_p`` and ``per_p_se`` have shape (n_buckets, n_queries, n_points) (None unless asked).
    """

    estimate: np.ndarray
    stderr: np.ndarray
    per_p: np.ndarray | None = None
    per_p_se: np.ndarray | None = None


def crossfit_residual(X, Y, fold_coef, fold, groups) -> np.ndarray:
    """Residuals of every row under the CV fit that did not see it, of shape (n_subsets, n_queries).

    Row i of fold k gets ``y_i − x_i β̂_k − g_k(p_i)`` with β̂_k the fold's training fit and g_k
    the bucket means of ``y − X β̂_k`` over the fold's training rows (their overall mean for a
    bucket the training rows miss).
    """
    out = np.empty_like(Y)
    G = int(groups.max()) + 1
    for k in range(fold_coef.shape[0]):
        rows, train = fold == k, fold != k
        for q in range(Y.shape[1]):
            active = np.flatnonzero(fold_coef[k, q])
            x = X[:, torch.as_tensor(active, device=X.device)].double().cpu().numpy()
            res = Y[:, q] - x @ fold_coef[k, q, active]
            sums = np.bincount(groups[train], res[train], minlength=G)
            counts = np.bincount(groups[train], minlength=G)
            means = np.where(counts > 0, sums / np.maximum(counts, 1), res[train].mean())
            out[rows, q] = res[rows] - means[groups[rows]]
    return out


def debiased(X, residual, coef, groups, d, fold, *, per_bucket=False) -> Intervals:
    """Debiased AMEs and their standard errors for the columns of X, cross-fitted.

    Parameters
    ----------
    X : Tensor of shape (n_subsets, n_points)
        The real columns of the design.
    residual : ndarray of shape (n_subsets, n_queries)
        :func:`crossfit_residual` of the fit on [X | X̃].
    coef : ndarray of shape (n_folds, n_queries, n_points)
        β̂ of the real columns in every fold's fit, in the units of X.
    groups : ndarray of int, shape (n_subsets,)
    d : ndarray of shape (n_subsets,)
        The denominators of :func:`ame.estimation.design.denominators`.
    fold : ndarray of int, shape (n_subsets,)
        The fold holding out each row: its β̂ is ``coef[fold[i]]``.
    per_bucket : bool
        Also estimate AME(L_p) in every bucket (discrete designs: one bucket per p).
    """
    m, N = X.shape
    Q, K, G = residual.shape[1], coef.shape[0], int(groups.max()) + 1
    r = torch.as_tensor(residual, dtype=torch.float64)
    coef = torch.as_tensor(coef, dtype=torch.float64)  # (K, Q, N)
    dt = torch.as_tensor(d, dtype=torch.float64)
    one_hot = torch.nn.functional.one_hot
    onehot = one_hot(torch.as_tensor(groups).long(), G).double()  # (m, G)
    cells = one_hot(torch.as_tensor(fold).long() * G + torch.as_tensor(groups), K * G).double()
    # z_in = x r + x² β_k(i): the bucket sums of z, z² and z d are sums over the (fold, bucket)
    # cells of x^a times row weights, i.e. products of the powers of X with these matrices
    r_g = (onehot[:, :, None] * r[:, None, :]).reshape(m, G * Q)
    by_x = torch.cat([r_g, r_g * dt[:, None]], 1)  # Σ x r, Σ x r d per bucket
    by_x2 = torch.cat(  # Σ x² r², and Σ x², Σ x² d per cell
        [(onehot[:, :, None] * (r * r)[:, None, :]).reshape(m, G * Q), cells, cells * dt[:, None]],
        1,
    )
    by_x3 = (cells[:, :, None] * r[:, None, :]).reshape(m, K * G * Q)  # Σ x³ r per cell
    est, se = np.empty((Q, N)), np.empty((Q, N))
    per_p = np.empty((G, Q, N)) if per_bucket else None
    per_p_se = np.empty((G, Q, N)) if per_bucket else None
    d_g, dd_g, n_g = onehot.T @ dt, onehot.T @ dt**2, onehot.sum(0)  # (G,) each
    step = max(1, _CHUNK_BYTES // (8 * max(m, K * G * Q) * 4))
    for s in range(0, N, step):
        x = X[:, s : s + step].double().cpu()  # (m, b)
        b = x.shape[1]
        x2 = x * x
        xr, xrd = (x.T @ by_x).reshape(b, 2, G, Q).unbind(1)
        moments = x2.T @ by_x2
        x2r2 = moments[:, : G * Q].reshape(b, G, Q)
        x2c, x2dc = moments[:, G * Q :].reshape(b, 2, K, G).unbind(1)
        x3r = ((x2 * x).T @ by_x3).reshape(b, K, G, Q)
        x4 = ((x2 * x2).T @ cells).reshape(b, K, G)
        beta = coef[:, :, s : s + step].permute(2, 0, 1)  # (b, K, Q)
        zg = xr + torch.einsum("bkg,bkq->bgq", x2c, beta)
        zz = (
            x2r2
            + 2 * torch.einsum("bkgq,bkq->bgq", x3r, beta)
            + torch.einsum("bkg,bkq->bgq", x4, beta * beta)
        )
        zd = xrd + torch.einsum("bkg,bkq->bgq", x2dc, beta)
        # Σ (z − θ d)² = Σ z² − 2 θ Σ z d + θ² Σ d², per bucket and over all rows
        theta = zg.sum(1) / d_g.sum()  # (b, Q)
        sq = zz.sum(1) - 2 * theta * zd.sum(1) + theta**2 * dd_g.sum()
        est[:, s : s + step] = theta.T.numpy()
        mean_d = d_g.sum() / m
        se[:, s : s + step] = ((sq.clamp_min(0) / (m * (m - 1))).sqrt() / mean_d).T.numpy()
        if per_bucket:
            theta_g = zg / d_g[None, :, None]  # (b, G, Q)
            sq = zz - 2 * theta_g * zd + theta_g**2 * dd_g[None, :, None]
            count = n_g[None, :, None]
            se_g = (sq.clamp_min(0) / (count * (count - 1))).sqrt() / (d_g / n_g)[None, :, None]
            per_p[:, :, s : s + step] = theta_g.permute(1, 2, 0).numpy()
            per_p_se[:, :, s : s + step] = se_g.permute(1, 2, 0).numpy()
    return Intervals(est, se, per_p, per_p_se)


def attributes(found: Intervals, degenerate, constant, spread, level, p_grid) -> dict:
    """The estimator's interval attributes from :func:`debiased` on the identifiable points.

    Degenerate queries get estimates 0 with standard error 0; ``spread`` scatters the columns of
    the identifiable points into all points (NaN elsewhere); per-p values are NaN where the
    point's membership is constant in that bucket (``constant``, (n_buckets, n_points)).
    """
    found.estimate[degenerate], found.stderr[degenerate] = 0.0, 0.0
    out = {"ame_debiased_": spread(found.estimate), "ame_se_": spread(found.stderr)}
    out["ci_low_"], out["ci_high_"] = confidence_interval(
        out["ame_debiased_"], out["ame_se_"], level
    )
    out["pvalues_"] = two_sided_pvalues(out["ame_debiased_"], out["ame_se_"])
    names = ("ame_per_p_", "ame_per_p_se_", "ame_per_p_ci_low_", "ame_per_p_ci_high_")
    out.update(dict.fromkeys(names), p_grid_=p_grid)
    if found.per_p is not None:
        per_p, per_p_se = found.per_p, found.per_p_se
        per_p[:, degenerate], per_p_se[:, degenerate] = 0.0, 0.0
        per_p, per_p_se = spread(per_p), spread(per_p_se)
        gone = np.broadcast_to(constant[:, None, :], per_p.shape)
        per_p[gone], per_p_se[gone] = np.nan, np.nan
        low, high = confidence_interval(per_p, per_p_se, level)
        out.update(zip(names, (per_p, per_p_se, low, high), strict=True))
    return out


def confidence_interval(estimate, stderr, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Normal interval ``estimate ± z_{(1+level)/2} · stderr``: (low, high)."""
    half = ndtri(0.5 + level / 2) * stderr
    return estimate - half, estimate + half


def two_sided_pvalues(estimate, stderr) -> np.ndarray:
    """p-values of H0: AME = 0; 1 where estimate and standard error are both 0, NaN stays NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(estimate) / stderr
    z = np.where((stderr == 0) & (estimate == 0), 0.0, z)
    return 2 * ndtr(-z)
