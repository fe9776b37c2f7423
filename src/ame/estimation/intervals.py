"""Confidence intervals and p-values: a debiased LASSO with the design's known covariance.

The experiment is randomized: given p_i, the columns of row i are independent with mean 0, and
``E[X_in Y_i | p_i] = d_i AME_n(L_{p_i})`` with d_i = 1 (inverse features) or p_i(1−p_i)
(centered ones). So for *any* coefficients β̂ and any function g of p,

    z_in = X_in (y_i − g(p_i) − Σ_{j≠n} X_ij β̂_j)

has ``E[z_in | p_i] = d_i AME_n(L_{p_i})``: the other points' fitted effects only remove variance
(a control variate), they cannot bias point n. The estimate is ``θ_n = Σ_i z_in / Σ_i d_i`` with
β̂ the cross-validated LASSO fit (real and knockoff columns) and g the bucket means of its
residuals; it equals the one-step debiased LASSO ``β̂ + Σ⁻¹ Xᵀ r / m`` with Σ = E[XᵀX]/m known
(diagonal) and the diagonal of XᵀX/m taken from the data, so it undoes the LASSO's shrinkage. It
estimates the same semivalue as ``ame_`` (the mean of AME(L_p) over the design's p for inverse
features, the p(1−p)-tilted mean for centered ones) and needs no m > N.

Standard errors come from the rows as independent draws (ratio estimator: influence
``(z_in − θ_n d_i) / mean(d)``), so they cover the sampling of p, of the subsets and the training
noise of the submodels; what they leave out is the dependence of β̂ on the same rows, of order
s log N / m for s effects. For discrete designs the same sums inside one bucket give
AME_n(L_p) at each p of the grid: every weighted Banzhaf value of the grid, with its interval.
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


def debiased(X, residual, coef, groups, d, *, per_bucket=False) -> Intervals:
    """Debiased AMEs and their standard errors for the columns of X.

    Parameters
    ----------
    X : Tensor of shape (n_subsets, n_points)
        The real columns of the design.
    residual : ndarray of shape (n_subsets, n_queries)
        ``y − g(p) − [X | X̃] β̂`` with g the bucket means.
    coef : ndarray of shape (n_queries, n_points)
        β̂ of the real columns, in the units of X.
    groups : ndarray of int, shape (n_subsets,)
    d : ndarray of shape (n_subsets,)
        The denominators of :func:`ame.estimation.design.denominators`.
    per_bucket : bool
        Also estimate AME(L_p) in every bucket (discrete designs: one bucket per p).
    """
    m, N = X.shape
    Q = residual.shape[1]
    G = int(groups.max()) + 1
    r = torch.as_tensor(residual, dtype=torch.float64)
    beta = torch.as_tensor(coef, dtype=torch.float64).T  # (N, Q)
    dt = torch.as_tensor(d, dtype=torch.float64)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(groups).long(), G).double()
    shape = (Q, N)
    est, se = np.empty(shape), np.empty(shape)
    per_p = np.empty((G, Q, N)) if per_bucket else None
    per_p_se = np.empty((G, Q, N)) if per_bucket else None
    d_sum, d_g = dt.sum(), onehot.T @ dt  # (), (G,)
    step = max(1, _CHUNK_BYTES // (8 * m * Q * 2))
    for s in range(0, N, step):
        x = X[:, s : s + step].double().cpu()  # (m, b)
        z = x[:, :, None] * (r[:, None, :] + x[:, :, None] * beta[None, s : s + step, :])
        theta = z.sum(0) / d_sum  # (b, Q)
        psi = (z - theta[None] * dt[:, None, None]) / (d_sum / m)
        est[:, s : s + step] = theta.T.numpy()
        se[:, s : s + step] = (psi.pow(2).sum(0) / (m * (m - 1))).sqrt().T.numpy()
        if per_bucket:
            zg = torch.einsum("mg,mbq->gbq", onehot, z)
            theta_g = zg / d_g[:, None, None]  # (G, b, Q)
            # sum over the rows of bucket g of (z − θ_g d)², expanded into bucket sums
            sq = (
                torch.einsum("mg,mbq->gbq", onehot, z * z)
                - 2 * theta_g * torch.einsum("mg,mbq->gbq", onehot, z * dt[:, None, None])
                + theta_g**2 * (onehot.T @ dt**2)[:, None, None]
            )
            n_g = onehot.sum(0)[:, None, None]
            mean_d = (d_g / onehot.sum(0))[:, None, None]
            se_g = (sq.clamp_min(0) / (n_g * (n_g - 1))).sqrt() / mean_d
            per_p[:, :, s : s + step] = theta_g.permute(0, 2, 1).numpy()
            per_p_se[:, :, s : s + step] = se_g.permute(0, 2, 1).numpy()
    return Intervals(est, se, per_p, per_p_se)


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
