"""Semivalues: exact values by enumeration, and the semivalue each design estimates.

A semivalue gives point n the value ``sum_{S ⊆ D \\ {n}} w(|S|) (U(S ∪ {n}) − U(S))``. The AME over
a distribution P* of the inclusion probability p is the semivalue with
``w(s) = E_{p~P*}[p^s (1 − p)^(N−1−s)]``. Which P* an experiment estimates depends on its design P
*and* on the featurization of the regression:

- ``"inverse"`` features (1/p in, −1/(1−p) out) estimate P* = P: the plain average of AME(L_p) over
  the sampled p. Used for discrete designs (``grid``, ``fixed``).
- ``"centered"`` features (x − p) estimate the p(1−p)-tilted law P*(p) ∝ P(p) p (1 − p). Used for
  continuous designs: ``shapley`` (P ∝ 1/(p(1−p)) on [ε, 1−ε]) then estimates the Shapley value
  restricted to p ∈ [ε, 1−ε], ``uniform`` the Beta(2, 2) semivalue and ``beta(a, b)`` the
  Beta(a+1, b+1) semivalue.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import integrate, special

from ame.errors import UserError
from ame.sampling import Design

FEATURIZATIONS = ("inverse", "centered")
MAX_ENUMERATED_POINTS = 16


def shapley_weights(n_points: int) -> np.ndarray:
    """Shapley subset weights ``w(s) = s! (N−1−s)! / N!``, of shape (n_points,)."""
    s = np.arange(n_points)
    return np.exp(
        special.gammaln(s + 1) + special.gammaln(n_points - s) - special.gammaln(n_points + 1)
    )


def banzhaf_weights(n_points: int) -> np.ndarray:
    """Banzhaf subset weights ``w(s) = 2^-(N−1)``, of shape (n_points,)."""
    return np.full(n_points, 0.5 ** (n_points - 1))


def _beta_weights(n_points: int, a: float, b: float) -> np.ndarray:
    """``E[p^s (1−p)^(N−1−s)]`` for p ~ Beta(a, b)."""
    s = np.arange(n_points)
    return np.exp(special.betaln(a + s, b + n_points - 1 - s) - special.betaln(a, b))


def _uniform_weights(n_points: int, lo: float, hi: float) -> np.ndarray:
    """``E[p^s (1−p)^(N−1−s)]`` for p ~ Uniform(lo, hi), via regularized incomplete beta."""
    s = np.arange(n_points)
    a, b = s + 1.0, n_points - s
    mass = special.betainc(a, b, hi) - special.betainc(a, b, lo)
    return np.exp(special.betaln(a, b)) * mass / (hi - lo)


def _logit_uniform_weights(n_points: int, eps: float) -> np.ndarray:
    """``E[p^s (1−p)^(N−1−s)]`` for density ∝ 1/(p(1−p)) on [eps, 1−eps], by quadrature."""
    norm = 2.0 * np.log((1.0 - eps) / eps)
    return (
        np.array(
            [
                integrate.quad(
                    lambda p, s=s: p ** (s - 1) * (1 - p) ** (n_points - 2 - s), eps, 1 - eps
                )[0]
                for s in range(n_points)
            ]
        )
        / norm
    )


def _check_featurization(featurization: str) -> None:
    if featurization not in FEATURIZATIONS:
        raise UserError(f"featurization: must be one of {FEATURIZATIONS}, got {featurization!r}")


def estimand_weights(design: Design, n_points: int, featurization: str) -> np.ndarray:
    """Subset weights of the semivalue that a design and featurization estimate.

    Parameters
    ----------
    design : Design
        The p-design the subsets were drawn from.
    n_points : int
        Number of training points N.
    featurization : {"inverse", "centered"}
        The regression features (see the module docstring for why they matter).

    Returns
    -------
    weights : ndarray of shape (n_points,)
        ``w(s)`` for coalition sizes s = 0 .. N−1; ``sum_s C(N−1, s) w(s) = 1``.
    """
    _check_featurization(featurization)
    centered = featurization == "centered"
    if design.is_discrete:
        values = np.array(design.p_values if design.name == "grid" else (design.p,))
        mix = values * (1 - values) if centered else np.ones_like(values)
        mix = mix / mix.sum()
        s = np.arange(n_points)
        return (
            mix[:, None] * values[:, None] ** s * (1 - values[:, None]) ** (n_points - 1 - s)
        ).sum(0)
    if design.name == "shapley":
        if centered:
            return _uniform_weights(n_points, design.eps, 1.0 - design.eps)
        return _logit_uniform_weights(n_points, design.eps)
    a, b = (1.0, 1.0) if design.name == "uniform" else (design.beta_a, design.beta_b)
    return _beta_weights(n_points, a + centered, b + centered)


def estimand_name(design: Design | None, featurization: str) -> str:
    """Human-readable name of the estimated semivalue (``design=None``: described from the data)."""
    _check_featurization(featurization)
    centered = featurization == "centered"
    if design is None:
        if centered:
            return "semivalue with p-density ∝ P(p)·p(1−p), P = the sampling law of p"
        return "mean of AME(L_p) over the sampled p"
    if design.is_discrete:
        values = design.p_values if design.name == "grid" else (design.p,)
        if len(values) == 1:
            return "Banzhaf value (p = 0.5)" if values[0] == 0.5 else f"AME at p = {values[0]:g}"
        listed = ", ".join(f"{v:g}" for v in values)
        how = "p(1−p)-weighted mean" if centered else "mean"
        return f"{how} of AME(L_p) over p in {{{listed}}}"
    if design.name == "shapley":
        lo, hi = design.eps, 1.0 - design.eps
        if centered:
            return f"Shapley value (p uniform on [{lo:g}, {hi:g}])"
        return f"semivalue with p-density ∝ 1/(p(1−p)) on [{lo:g}, {hi:g}]"
    a, b = (1.0, 1.0) if design.name == "uniform" else (design.beta_a, design.beta_b)
    if not centered and a == b == 1.0:
        return "Shapley value"
    return f"Beta({a + centered:g}, {b + centered:g}) semivalue"


def exact_semivalue(
    utility: Callable[[np.ndarray], np.ndarray], n_points: int, weights: np.ndarray
) -> np.ndarray:
    """Semivalue of every point by enumerating all 2^N subsets.

    Parameters
    ----------
    utility : callable
        Maps a boolean array of shape (n_subsets, n_points) to values of shape (n_subsets,) or
        (n_subsets, n_queries).
    n_points : int
        Number of players N (at most 16: the utility is evaluated 2^N times).
    weights : array-like of shape (n_points,)
        Subset weights w(s), e.g. from :func:`estimand_weights` or :func:`shapley_weights`.

    Returns
    -------
    values : ndarray of shape (n_points,) or (n_queries, n_points)
        Shaped like the utility: one row per query when the utility returns two dimensions.
    """
    if not 1 <= n_points <= MAX_ENUMERATED_POINTS:
        raise UserError(
            f"n_points: enumeration needs 1 <= N <= {MAX_ENUMERATED_POINTS}, got {n_points}"
        )
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (n_points,):
        raise UserError(f"weights: expected shape ({n_points},), got {weights.shape}")
    codes = np.arange(2**n_points)
    masks = ((codes[:, None] >> np.arange(n_points)) & 1).astype(bool)
    values = np.asarray(utility(masks), dtype=float)
    if values.shape[0] != codes.size or values.ndim not in (1, 2):
        raise UserError(
            f"utility: expected values of shape ({codes.size},) or ({codes.size}, n_queries), "
            f"got {values.shape}"
        )
    sizes = masks.sum(1)
    out = np.empty((n_points,) + values.shape[1:])
    for n in range(n_points):
        without = codes[~masks[:, n]]
        out[n] = weights[sizes[without]] @ (values[without | (1 << n)] - values[without])
    return out.T
