"""Estimate Average Marginal Effects from randomized subset experiments.

Featurization (the only place it lives). Row i of the design describes subset S_i drawn with
inclusion probability p_i:

- ``"inverse"``: X[i, n] = 1/p_i if n ∈ S_i else −1/(1−p_i), for designs with few distinct p (grid,
  fixed). Given p, E[X_n Y | p] = AME_n(L_p) and Var(X_n | p) = 1/(p(1−p)), so the least-squares
  coefficient is β_n = E_p[AME_n(L_p)] / v with v = E_p[1/(p(1−p))]; we report AME_n = v̂ β_n with
  v̂ the mean of 1/(p_i(1−p_i)) over the rows (5.2083 in population for the grid 0.2…0.8).
- ``"centered"``: X[i, n] = 1[n ∈ S_i] − p_i, for continuous designs (many distinct p). Now
  E[X_n Y | p] = p(1−p) AME_n(L_p) and Var(X_n | p) = p(1−p), so β_n = E_P[p(1−p) AME_n(L_p)] /
  E_P[p(1−p)] is itself an AME: the semivalue whose p-density is ∝ P(p) p(1−p). The ``shapley``
  design (density ∝ 1/(p(1−p)) on [ε, 1−ε]) thus estimates the Shapley value restricted to
  p ∈ [ε, 1−ε]; ``uniform`` the Beta(2, 2) and ``beta(a, b)`` the Beta(a+1, b+1) semivalue.
  Uniform sampling cannot give the Shapley value with finite variance through this regression.
  Centered features tilt it to Beta(2, 2); undoing the tilt needs the inverse features, whose
  normalizer v = E_p[1/(p(1−p))] is infinite under p ~ Uniform(0, 1) (v̂ is then a heavy-tailed
  average and the features of rows with p near 0 or 1 are unbounded). With centered features the
  Shapley value needs p-density ∝ 1/(p(1−p)), which only normalizes on [ε, 1−ε]: hence the
  ``shapley`` design and its O(ε) truncation.

Buckets. The mean behaviour depends on p (bigger subsets, better models). One unpenalized
indicator per distinct p (discrete designs) or per quantile bin of p (continuous designs,
``n_p_bins``) absorbs it. Both featurizations have E[X_n | p] = 0, so any function of p is
uncorrelated with X_n in population: the indicators change no coefficient's target, they only
remove the variance that the p-dependent mean would otherwise add to the residuals.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
import torch

from ame.estimation.semivalues import estimand_name
from ame.estimation.solver import (
    column_scale,
    kfold_weights,
    lambda_max,
    lasso_path,
    sparse_to_dense,
)
from ame.sampling import STREAMS, Design, subset_rng, unpack_masks

MAX_DISCRETE_P = 50
FEATURIZATIONS = ("auto", "inverse", "centered")
LAMBDA_RULES = ("1se", "min")
DIRECTIONS = ("positive", "negative")
_ROW_CHUNK = 64
_BOOTSTRAP_STEPS = 20
KNOCKOFFS = STREAMS["knockoffs"]


def knockoff_threshold(W: np.ndarray, fdr: float, offset: int = 1) -> float:
    """Knockoff(+) selection threshold.

    ``T = min{t ∈ {|W_n| ≠ 0} : (offset + #{W ≤ −t}) / max(1, #{W ≥ t}) ≤ fdr}``; select W ≥ T.

    Parameters
    ----------
    W : array-like of shape (n_points,)
        Knockoff statistics (large positive: evidence for the real column).
    fdr : float
        Target false discovery rate q.
    offset : {0, 1}
        1 for Knockoff+ (controls the FDR), 0 for Knockoff (controls a modified FDR).

    Returns
    -------
    float
        The threshold, ``inf`` when no t qualifies (nothing is selected).
    """
    W = np.asarray(W, dtype=float).ravel()
    ts = np.unique(np.abs(W[W != 0]))
    pos, neg = np.sort(W[W > 0]), np.sort(-W[W < 0])
    n_pos = pos.size - np.searchsorted(pos, ts, side="left")
    n_neg = neg.size - np.searchsorted(neg, ts, side="left")
    ok = (offset + n_neg) / np.maximum(1, n_pos) <= fdr
    return float(ts[ok][0]) if ok.any() else np.inf


def featurize(
    masks, p, n_points, featurization, *, knockoff_seed=None, subset_index=None, device="cpu"
):
    """Build the float32 design [X | X̃] once, in row chunks.

    Parameters
    ----------
    masks : ndarray of bool, shape (n_subsets, n_points), or of uint8, shape (n_subsets, ceil(N/8))
        Subsets, plain or bit-packed (little bit order, as :func:`ame.sampling.pack_masks`).
    p : ndarray of shape (n_subsets,)
    n_points : int
    featurization : {"inverse", "centered"}
    knockoff_seed : int, optional
        When given, append N knockoff columns: row i uses a fresh Bernoulli(p_i)^N mask from
        ``subset_rng(knockoff_seed, subset_index[i], stream=STREAMS["knockoffs"])``, so the
        knockoffs of a budget prefix are the prefix of the knockoffs.
    subset_index : ndarray of int, shape (n_subsets,), optional
        Index of each row's subset in the experiment; default 0 .. n_subsets - 1.
    device : str or torch.device

    Returns
    -------
    Tensor of shape (n_subsets, n_points) or (n_subsets, 2 * n_points), float32
    """
    m = len(p)
    subset_index = np.arange(m) if subset_index is None else subset_index
    n_cols = n_points * (1 if knockoff_seed is None else 2)
    X = torch.empty((m, n_cols), dtype=torch.float32, device=device)
    inside, outside = (1 / p, -1 / (1 - p)) if featurization == "inverse" else (1 - p, -p)
    for s in range(0, m, _ROW_CHUNK):
        rows = np.arange(s, min(s + _ROW_CHUNK, m))
        bits = unpack_masks(masks[rows], n_points) if masks.dtype == np.uint8 else masks[rows]
        blocks = [bits]
        if knockoff_seed is not None:
            blocks.append(
                np.stack(
                    [
                        subset_rng(
                            knockoff_seed, subset_index[i], stream=STREAMS["knockoffs"]
                        ).random(n_points)
                        < p[i]
                        for i in rows
                    ]
                )
            )
        for k, block in enumerate(blocks):
            values = np.where(block, inside[rows, None], outside[rows, None]).astype(np.float32)
            X[rows[0] : rows[-1] + 1, k * n_points : (k + 1) * n_points] = torch.from_numpy(
                values
            ).to(device)
    return X


class AMEEstimator:
    """Average Marginal Effects of training points by cross-validated LASSO with knockoffs.

    Parameters
    ----------
    featurization : {"auto", "inverse", "centered"}
        "auto" uses inverse features when p takes at most 50 distinct values, else centered ones
        (see the module docstring for what each estimates).
    lambda_rule : {"1se", "min"} or float
        "1se": the largest λ whose CV error is within one standard error of the minimum (sparser;
        for detection); "min": the CV minimum (for value estimation). A float r in [0, 1) fixes
        λ = r · λ_max per query (the path is still run down to it for warm starts); 0 gives the
        least-squares fit, which needs more training rows per fold than columns.
    n_folds : int
        Cross-validation folds.
    n_lambdas, lambda_min_ratio : int, float
        Per-query log-spaced grid from λ_max down to ``lambda_min_ratio`` · λ_max (glmnet style).
    knockoffs : bool
        Append model-X knockoff columns, needed by :meth:`select`.
    fdr, knockoff_plus : float, bool
        Defaults of :meth:`select`.
    n_bootstrap : int
        Bootstrap replicates for ``stderr_`` (0: none). Every ``n_folds + 1`` replicates cost about
        one short CV path; resampled fits admit more noise columns than the full fit at the same
        λ, so with many columns per subset they are the expensive part, bounded by ``max_active``.
    n_p_bins : int
        Quantile bins of p whose unpenalized indicators absorb the p-dependent mean (continuous p).
    standardize : bool
        Penalize coefficients of columns scaled to unit within-bucket standard deviation.
    patience : int
        A query stops descending the λ path once its CV minimum lies this many steps back: the
        rest of its path cannot move λ_min or λ_1se, and it is where noise columns pour in and
        the active sets, and so the cost, grow fastest.
    max_active : int
        The path stops, with a warning, before a step that would give a fit more active columns.
        It bounds the memory of the Grams: about 12 · (n_folds + 1) · max_active² bytes per query
        (float64 and float32 copies).
    tol, max_iter : float, int
        KKT tolerance (relative to λ_max) and FISTA iteration limit of the solver.
    device : str
        Torch device of the computation ("cpu", "cuda").
    random_state : int or None
        Seeds folds, knockoff masks and bootstrap replicates.

    Attributes
    ----------
    ame_ : ndarray of shape (n_queries, n_points)
        AMEs in the behaviour's own units (the official code reports AME / v² for grid designs).
    knockoff_ame_ : ndarray of shape (n_queries, n_points) or None
        The knockoff columns' coefficients, same units.
    stderr_ : ndarray of shape (n_queries, n_points) or None
        Bootstrap standard errors of ``ame_`` (see :meth:`fit` for what they cover).
    lambda_ : ndarray of shape (n_queries,)
        Chosen penalty, in standardized units.
    lambda_index_ : ndarray of int, shape (n_queries,)
    lambdas_, cv_mse_, cv_se_ : ndarray of shape (n_queries, n_steps)
        The λ path (shorter than ``n_lambdas`` after an early stop), the mean CV error and its
        standard error across folds. A query stops ``patience`` steps after its own CV minimum:
        its CV errors are NaN at the steps after that.
    featurization_ : str
    ame_scale_ : float
        AME = ame_scale_ · coefficient: v̂ for inverse features, 1 for centered ones.
    semivalue_ : str
        Name of the estimand.
    n_points_ : int
    """

    def __init__(
        self,
        featurization="auto",
        lambda_rule="1se",
        n_folds=10,
        n_lambdas=100,
        lambda_min_ratio=0.01,
        knockoffs=True,
        fdr=0.1,
        knockoff_plus=True,
        n_bootstrap=0,
        n_p_bins=10,
        standardize=True,
        patience=10,
        max_active=1000,
        tol=1e-4,
        max_iter=10_000,
        device="cpu",
        random_state=0,
    ):
        self.featurization = featurization
        self.lambda_rule = lambda_rule
        self.n_folds = n_folds
        self.n_lambdas = n_lambdas
        self.lambda_min_ratio = lambda_min_ratio
        self.knockoffs = knockoffs
        self.fdr = fdr
        self.knockoff_plus = knockoff_plus
        self.n_bootstrap = n_bootstrap
        self.n_p_bins = n_p_bins
        self.standardize = standardize
        self.patience = patience
        self.max_active = max_active
        self.tol = tol
        self.max_iter = max_iter
        self.device = device
        self.random_state = random_state

    def fit(self, masks, p, Y, *, n_points=None, design: Design | None = None, subset_index=None):
        """Estimate the AMEs of every point on every behaviour.

        Parameters
        ----------
        masks : ndarray of bool, shape (n_subsets, n_points), or bit-packed uint8 of shape
            (n_subsets, ceil(n_points / 8)) together with ``n_points``
        p : ndarray of shape (n_subsets,)
            Inclusion probability of each subset, in (0, 1).
        Y : ndarray of shape (n_subsets,) or (n_subsets, n_queries)
            Behaviours of each submodel; a vector is one query.
        n_points : int, optional
            Number of training points; required for packed masks.
        design : Design, optional
            The design the subsets came from; only names the estimand in ``semivalue_``.
        subset_index : array-like of int, shape (n_subsets,), optional
            Index of each row's subset in the experiment (default 0 .. n_subsets - 1). It seeds the
            row's knockoff mask, so that rows keep their knockoffs when others are missing.

        Returns
        -------
        self

        Notes
        -----
        ``stderr_`` is the spread of the estimates over bootstrap resamples of the submodels,
        refitted at the chosen λ. It covers the sampling noise of the subsets and the training
        noise of the submodels, conditional on λ. It does not cover the shrinkage bias of the
        LASSO, and a point whose estimate is 0 in most replicates can show (near) zero spread.
        """
        self._validate_params()
        masks, p, Y, n_points = _validate_data(masks, p, Y, n_points)
        m, Q = Y.shape
        if subset_index is not None:
            subset_index = np.asarray(subset_index)
            if subset_index.shape != (m,) or not np.issubdtype(subset_index.dtype, np.integer):
                raise ValueError(f"subset_index: expected {m} integers, one per row of masks")
        if self.n_folds > m:
            raise ValueError(
                f"n_folds: {self.n_folds} folds need at least as many subsets, got {m}"
            )
        seed = (
            self.random_state if self.random_state is not None else np.random.SeedSequence().entropy
        )
        rng = np.random.default_rng(seed)
        values, groups = np.unique(p, return_inverse=True)
        discrete = values.size <= MAX_DISCRETE_P
        if self.featurization == "auto":
            self.featurization_ = "inverse" if discrete else "centered"
        else:
            self.featurization_ = self.featurization
        if not discrete:
            groups = _quantile_bins(p, self.n_p_bins)
        self._check_least_squares(n_points * (1 + self.knockoffs) + groups.max() + 1, m)
        X = featurize(
            masks,
            p,
            n_points,
            self.featurization_,
            knockoff_seed=seed if self.knockoffs else None,
            subset_index=subset_index,
            device=self.device,
        )
        groups_t = torch.as_tensor(groups, device=self.device)
        Yt = torch.as_tensor(Y, device=self.device)
        scale = column_scale(X, groups_t) if self.standardize else None
        lam_max = lambda_max(X, Yt, groups_t, scale)
        lambdas = lam_max[None, :] * torch.as_tensor(self._ratios(), device=self.device)[:, None]
        weights, held_out = kfold_weights(m, self.n_folds, rng)
        cv_rule = isinstance(self.lambda_rule, str)
        path = lasso_path(
            X,
            Yt,
            torch.as_tensor(weights),
            lambdas,
            groups=groups_t,
            scale=scale,
            held_out=torch.as_tensor(held_out),
            keep_path=self.n_folds,
            tol=self.tol,
            max_iter=self.max_iter,
            patience=self.patience if cv_rule else None,
            max_active=self.max_active,
        )
        if not cv_rule and path.n_solved.min() < self.n_lambdas:
            raise ValueError(
                f"max_active: the path stopped at λ step {path.n_solved.min()} of "
                f"{self.n_lambdas}, before the penalty fixed by lambda_rule={self.lambda_rule}"
            )
        self.lambdas_ = path.lambdas.T
        self.cv_mse_ = path.cv_mse.mean(1).T
        self.cv_se_ = path.cv_mse.std(1, ddof=1).T / np.sqrt(self.n_folds)
        self.lambda_index_ = self._choose()
        self.lambda_ = self.lambdas_[np.arange(Q), self.lambda_index_]
        coef = np.stack(
            [
                sparse_to_dense(path.path_index[t][q], path.path_coef[t][q], X.shape[1])
                for q, t in enumerate(self.lambda_index_)
            ]
        )
        self.ame_scale_ = (
            float(np.mean(1 / (p * (1 - p)))) if self.featurization_ == "inverse" else 1.0
        )
        self.ame_ = self.ame_scale_ * coef[:, :n_points]
        self.knockoff_ame_ = self.ame_scale_ * coef[:, n_points:] if self.knockoffs else None
        self.stderr_ = None
        if self.n_bootstrap:
            self.stderr_ = self._bootstrap(X, Yt, groups_t, scale, rng)[:, :n_points]
        self.semivalue_ = estimand_name(design, self.featurization_)
        self.n_points_ = n_points
        return self

    def select(self, fdr=None, direction="positive", knockoff_plus=None) -> np.ndarray:
        """Points selected by the knockoff filter, at a controlled false discovery rate.

        Parameters
        ----------
        fdr : float, optional
            Target FDR q (default: the ``fdr`` given at construction).
        direction : {"positive", "negative"}
            "positive" selects points that raise the behaviour (W = max(β, 0) − max(β̃, 0));
            "negative" those that lower it (the mirrored statistic).
        knockoff_plus : bool, optional
            Knockoff+ (offset 1, controls the FDR) or Knockoff (offset 0); default: the
            ``knockoff_plus`` given at construction.

        Returns
        -------
        ndarray of bool, shape (n_queries, n_points)
        """
        if not hasattr(self, "ame_"):
            raise ValueError("select: call fit before select")
        if self.knockoff_ame_ is None:
            raise ValueError(
                "select: the estimator was fitted with knockoffs=False; refit with knockoffs=True"
            )
        fdr = self.fdr if fdr is None else fdr
        _check_fdr(fdr)
        if direction not in DIRECTIONS:
            raise ValueError(f"direction: must be one of {DIRECTIONS}, got {direction!r}")
        plus = self.knockoff_plus if knockoff_plus is None else knockoff_plus
        sign = 1.0 if direction == "positive" else -1.0
        W = np.maximum(sign * self.ame_, 0) - np.maximum(sign * self.knockoff_ame_, 0)
        thresholds = np.array([knockoff_threshold(w, fdr, offset=int(bool(plus))) for w in W])
        return W >= thresholds[:, None]

    def _ratios(self) -> np.ndarray:
        """λ / λ_max along the path, decreasing."""
        if isinstance(self.lambda_rule, str):
            return np.geomspace(1.0, self.lambda_min_ratio, self.n_lambdas)
        if self.lambda_rule > 0:
            return np.geomspace(1.0, self.lambda_rule, self.n_lambdas)
        return np.append(np.geomspace(1.0, self.lambda_min_ratio, self.n_lambdas - 1), 0.0)

    def _choose(self) -> np.ndarray:
        """Index of the chosen λ of every query."""
        if not isinstance(self.lambda_rule, str):
            return np.full(len(self.cv_mse_), self.cv_mse_.shape[1] - 1)
        best = np.nanargmin(self.cv_mse_, axis=1)
        if self.lambda_rule == "min":
            return best
        rows = np.arange(len(best))
        bound = self.cv_mse_[rows, best] + self.cv_se_[rows, best]
        return (self.cv_mse_ <= bound[:, None]).argmax(1)

    def _bootstrap(self, X, Yt, groups, scale, rng) -> np.ndarray:
        """Standard deviation over bootstrap refits at the chosen λ, shape (n_queries, n_columns).

        Replicates are multinomial row weights, solved a chunk of ``n_folds + 1`` at a time (the
        memory of the CV fit), each along a short warm-started path from λ_max down to λ.
        """
        m, P = X.shape
        Q = Yt.shape[1]
        steps = min(_BOOTSTRAP_STEPS, int(self.lambda_index_.max()) + 1)
        picks = np.rint(np.linspace(0, self.lambda_index_, max(steps, 2))).astype(int)
        lambdas = torch.as_tensor(self.lambdas_[np.arange(Q), picks], device=self.device)
        total, total_sq = np.zeros((Q, P)), np.zeros((Q, P))
        chunk = self.n_folds + 1
        for start in range(0, self.n_bootstrap, chunk):
            count = min(chunk, self.n_bootstrap - start)
            weights = rng.multinomial(m, np.full(m, 1.0 / m), size=count).T.astype(float)
            path = lasso_path(
                X,
                Yt,
                torch.as_tensor(weights),
                lambdas,
                groups=groups,
                scale=scale,
                tol=self.tol,
                max_iter=self.max_iter,
                max_active=self.max_active,
            )
            if path.n_solved.min() < len(lambdas):
                warnings.warn(
                    "stderr_: bootstrap refits stopped above the chosen λ (max_active reached); "
                    "their spread describes a sparser fit",
                    stacklevel=3,
                )
            coef = self.ame_scale_ * sparse_to_dense(path.final_index, path.final_coef, P)
            total += coef.sum(0)
            total_sq += (coef**2).sum(0)
        var = (total_sq - total**2 / self.n_bootstrap) / max(self.n_bootstrap - 1, 1)
        return np.sqrt(np.clip(var, 0.0, None))

    def _check_least_squares(self, n_columns: int, n_subsets: int) -> None:
        train_rows = n_subsets - -(-n_subsets // self.n_folds)
        if (
            not isinstance(self.lambda_rule, str)
            and self.lambda_rule == 0
            and n_columns >= train_rows
        ):
            raise ValueError(
                f"lambda_rule: 0 (least squares) needs more training rows per fold ({train_rows}) "
                f"than columns plus buckets ({n_columns}); use a positive rule or more subsets"
            )

    def _validate_params(self) -> None:
        if self.featurization not in FEATURIZATIONS:
            raise ValueError(
                f"featurization: must be one of {FEATURIZATIONS}, got {self.featurization!r}"
            )
        rule = self.lambda_rule
        if isinstance(rule, str):
            if rule not in LAMBDA_RULES:
                raise ValueError(
                    f"lambda_rule: must be one of {LAMBDA_RULES} or a float >= 0, got {rule!r}"
                )
        elif not isinstance(rule, numbers.Real) or isinstance(rule, bool) or not 0 <= rule < 1:
            raise ValueError(f"lambda_rule: a fixed rule must be a float in [0, 1), got {rule!r}")
        _check_int("n_folds", self.n_folds, 2)
        _check_int("n_lambdas", self.n_lambdas, 2)
        _check_int("n_bootstrap", self.n_bootstrap, 0)
        _check_int("n_p_bins", self.n_p_bins, 1)
        _check_int("patience", self.patience, 1)
        _check_int("max_active", self.max_active, 1)
        _check_int("max_iter", self.max_iter, 1)
        if not 0 < self.lambda_min_ratio < 1:
            raise ValueError(f"lambda_min_ratio: must lie in (0, 1), got {self.lambda_min_ratio}")
        if not self.tol > 0:
            raise ValueError(f"tol: must be positive, got {self.tol}")
        _check_fdr(self.fdr)


def _check_int(name: str, value, low: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")


def _check_fdr(fdr) -> None:
    if not isinstance(fdr, numbers.Real) or not 0 <= fdr <= 1:
        raise ValueError(f"fdr: must lie in [0, 1], got {fdr!r}")


def _quantile_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Bucket of each row: its quantile bin of p (empty bins dropped)."""
    edges = np.quantile(p, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(np.searchsorted(edges, p, side="right"), return_inverse=True)[1]


def _validate_data(masks, p, Y, n_points):
    """Check shapes, types and values; return masks, p (float64), Y (float64, 2-D) and N."""
    masks = np.asarray(masks)
    if masks.ndim != 2:
        raise ValueError(
            f"masks: expected a 2-D array (n_subsets, n_points), got shape {masks.shape}"
        )
    if masks.dtype == np.uint8:
        if n_points is None:
            raise ValueError("n_points: required with bit-packed uint8 masks")
        if masks.shape[1] != -(-n_points // 8):
            raise ValueError(
                f"masks: {masks.shape[1]} bytes per row do not hold n_points={n_points} bits"
            )
    elif masks.dtype == bool:
        if n_points is not None and n_points != masks.shape[1]:
            raise ValueError(f"n_points: {n_points} differs from masks.shape[1]={masks.shape[1]}")
        n_points = masks.shape[1]
    else:
        raise ValueError(f"masks: expected bool or bit-packed uint8, got dtype {masks.dtype}")
    m = masks.shape[0]
    p = np.asarray(p, dtype=float)
    if p.shape != (m,):
        raise ValueError(f"p: expected shape ({m},) to match masks, got {p.shape}")
    if not np.all((p > 0) & (p < 1)):
        raise ValueError("p: every inclusion probability must lie strictly inside (0, 1)")
    Y = np.asarray(Y, dtype=float)
    Y = Y[:, None] if Y.ndim == 1 else Y
    if Y.ndim != 2 or Y.shape[0] != m:
        raise ValueError(
            f"Y: expected shape ({m},) or ({m}, n_queries) to match masks, got {Y.shape}"
        )
    if not np.all(np.isfinite(Y)):
        raise ValueError("Y: contains NaN or infinite values")
    if n_points < 1 or Y.shape[1] < 1:
        raise ValueError("masks, Y: need at least one point and one query")
    return masks, p, Y, n_points
