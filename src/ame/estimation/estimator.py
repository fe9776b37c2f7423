"""The AME estimator: cross-validated LASSO over the design, λ choice, intervals and selection.

The design (featurization, buckets, identifiability) lives in :mod:`ame.estimation.design`, the
checks of the behaviours in :mod:`~ame.estimation.behaviours`, the knockoff filter and
Benjamini–Hochberg in :mod:`~ame.estimation.knockoffs`, the debiased intervals in
:mod:`~ame.estimation.intervals` and the batched path solver in :mod:`~ame.estimation.solver`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ame.estimation import behaviours, intervals, knockoffs
from ame.estimation import design as dsg
from ame.estimation._validation import check_data, check_least_squares, check_params
from ame.estimation.cv import bootstrap_stderr, cross_validate_live, kfold_weights
from ame.estimation.semivalues import estimand_name
from ame.sampling import Design


class AMEEstimator:
    """Average Marginal Effects of training points by cross-validated LASSO with knockoffs.

    Parameters
    ----------
    featurization : {"auto", "inverse", "centered"}
        "auto" uses inverse features for discrete designs (from ``fit``'s ``design``, else from
        p: at most 50 distinct values, each on at least 2 subsets), centered ones otherwise
        (see :mod:`ame.estimation.design` for what each estimates).
    lambda_rule : {"1se", "min"} or float
        "1se": the largest λ whose CV error is within one standard error of the minimum (sparser;
        for detection); "min": the CV minimum (for value estimation). A float r in [0, 1) fixes
        λ = r · λ_max per query (the path is still run down to it for warm starts); 0 gives the
        least-squares fit, which needs more training rows per fold than columns.
    n_folds : int
        Cross-validation folds, stratified by bucket; identical subsets share a fold.
    n_lambdas, lambda_min_ratio : int, float
        Per-query log-spaced grid from λ_max down to ``lambda_min_ratio`` · λ_max (glmnet style).
    knockoffs : bool
        Append model-X knockoff columns, needed by ``select(rule="knockoff")``.
    fdr, knockoff_plus : float, bool
        Defaults of :meth:`select`.
    selection_rule : {"knockoff", "bh"}
        Default rule of :meth:`select`: the knockoff filter, or Benjamini–Hochberg on the
        one-sided p-values of the debiased estimates.
    ci_level : float
        Coverage of the intervals ``ci_low_``, ``ci_high_`` (and per p).
    n_bootstrap : int
        Bootstrap replicates for ``stderr_`` (0: none), the spread of refits at the chosen λ.
    n_p_bins : int
        Quantile bins of p whose unpenalized indicators absorb the p-dependent mean (continuous p).
    standardize : bool
        Penalize coefficients of columns scaled to unit within-bucket standard deviation.
    robust : {None, "winsorize"}
        "winsorize" clips every behaviour at ``outlier_z`` robust standard deviations around its
        bucket medians before the fit (the AMEs are then those of the clipped behaviour).
    outlier_z : float
        Robust z-score beyond which a value counts in ``n_outliers_`` (and is clipped).
    patience : int
        A query stops descending the λ path once its CV minimum lies this many steps back.
    max_active : int
        The path of a query stops before a step that would give one of its fits more active
        columns (recorded in ``path_truncated_``). It bounds the memory of the Grams: about
        12 · (n_folds + 1) · max_active² bytes per query.
    tol, max_iter : float, int
        KKT tolerance (relative to λ_max) and FISTA iteration limit of the solver.
    device : str
        Torch device of the computation ("cpu", "cuda").
    random_state : int or None
        Seeds folds, knockoff masks and bootstrap replicates.

    Attributes
    ----------
    ame_ : ndarray of shape (n_queries, n_points)
        LASSO AMEs in the behaviour's own units (sparse; for ranking and selection). NaN for
        unidentifiable points, 0 for degenerate queries.
    ame_debiased_, ame_se_ : ndarray of shape (n_queries, n_points)
        Debiased AMEs (same estimand, shrinkage undone) and their standard errors.
    ci_low_, ci_high_, pvalues_ : ndarray of shape (n_queries, n_points)
        ``ci_level`` intervals around ``ame_debiased_`` and two-sided p-values of AME = 0.
    p_grid_ : ndarray of shape (n_p,) or None
        The distinct p of a discrete design (None for continuous ones).
    ame_per_p_, ame_per_p_se_, ame_per_p_ci_low_, ame_per_p_ci_high_ : ndarray of shape
        (n_p, n_queries, n_points) or None
        AME_n(L_p) at every p of ``p_grid_`` (the weighted Banzhaf value of weight p), with
        standard errors and intervals; NaN where the point's membership is constant at that p.
    knockoff_ame_ : ndarray of shape (n_queries, n_points) or None
        The knockoff columns' coefficients, same units.
    stderr_ : ndarray of shape (n_queries, n_points) or None
        Bootstrap spread of refits at the chosen λ. It omits the LASSO's shrinkage bias and does
        not make an interval: use ``ci_low_``, ``ci_high_``.
    unidentifiable_ : ndarray of bool, shape (n_points,)
        Points whose membership never varies inside a bucket (e.g. in every subset or none):
        kept out of the fit, NaN everywhere, never selected.
    degenerate_ : ndarray of bool, shape (n_queries,)
        Queries whose behaviour is constant up to rounding once the bucket means are removed:
        not fitted, AMEs 0, intervals [0, 0], never selected.
    n_outliers_ : ndarray of int, shape (n_queries,)
        Subsets whose behaviour has |robust z| > ``outlier_z``.
    lambda_ : ndarray of shape (n_queries,)
        Chosen penalty, in standardized units (0 for degenerate queries).
    lambda_index_ : ndarray of int, shape (n_queries,)
    lambdas_, cv_mse_, cv_se_ : ndarray of shape (n_queries, n_steps)
        The λ path, the mean CV error and its standard error across folds; CV errors are NaN
        after a query stopped (``patience``, ``max_active``) and for degenerate queries.
    n_steps_ : ndarray of int, shape (n_queries,)
        λ steps each query solved.
    path_truncated_, lambda_at_path_end_ : ndarray of bool, shape (n_queries,)
        ``max_active`` stopped the path; the chosen λ is its last solved step (the CV curve
        was cut before its minimum could show: the fit is too sparse).
    featurization_ : str
    discrete_ : bool
    ame_scale_ : float
        AME = ame_scale_ · coefficient: v̂ for inverse features, 1 for centered ones.
    semivalue_ : str
        Name of the estimand.
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
        selection_rule="knockoff",
        ci_level=0.95,
        n_bootstrap=0,
        n_p_bins=10,
        standardize=True,
        robust=None,
        outlier_z=10.0,
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
        self.selection_rule = selection_rule
        self.ci_level = ci_level
        self.n_bootstrap = n_bootstrap
        self.n_p_bins = n_p_bins
        self.standardize = standardize
        self.robust = robust
        self.outlier_z = outlier_z
        self.patience = patience
        self.max_active = max_active
        self.tol = tol
        self.max_iter = max_iter
        self.device = device
        self.random_state = random_state

    def fit(
        self,
        masks,
        p,
        Y,
        *,
        n_points=None,
        design: Design | None = None,
        subset_index=None,
        fold_groups=None,
    ):
        """Estimate the AMEs of every point on every behaviour, with intervals.

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
            The design the subsets came from: decides discrete or continuous p (pass it; without
            it, p is discrete when it has few values, each on several subsets) and names the
            estimand in ``semivalue_``.
        subset_index : array-like of int, shape (n_subsets,), optional
            Index of each row's subset in the experiment (default 0 .. n_subsets - 1). It seeds the
            row's knockoff mask, so that rows keep their knockoffs when others are missing.
        fold_groups : array-like of int, shape (n_subsets,), optional
            Rows with equal ids share a cross-validation fold (e.g. a subset and its complement:
            a held-out row whose partner trains the fold would leak). Identical subsets share
            a fold anyway.

        Returns
        -------
        self
        """
        check_params(self)
        masks, p, Y, n_points, subset_index = check_data(masks, p, Y, n_points, subset_index)
        m, Q = Y.shape
        check_least_squares(self.lambda_rule, self.n_folds, None, m)
        seed = self.random_state
        seed = np.random.SeedSequence().entropy if seed is None else seed
        rng = np.random.default_rng(seed)
        groups, self.discrete_ = dsg.buckets(p, design, self.n_p_bins)
        auto = "inverse" if self.discrete_ else "centered"
        self.featurization_ = auto if self.featurization == "auto" else self.featurization
        constant = dsg.constant_membership(masks, n_points, groups)
        self.unidentifiable_ = constant.all(0)
        keep = np.flatnonzero(~self.unidentifiable_)
        z, _, _ = behaviours.robust_z(Y, groups)
        self.n_outliers_ = (np.abs(z) > self.outlier_z).sum(0)
        if self.robust == "winsorize":
            Y = behaviours.winsorize(Y, groups, self.outlier_z)
        else:
            behaviours.warn_outliers(self.n_outliers_, self.outlier_z)
        self.degenerate_ = behaviours.degenerate(Y, groups)
        live = np.flatnonzero(~self.degenerate_)
        n_kept = keep.size
        check_least_squares(
            self.lambda_rule, self.n_folds, n_kept * (1 + self.knockoffs) + groups.max() + 1, m
        )
        X = dsg.featurize(
            masks,
            p,
            n_points,
            self.featurization_,
            knockoff_seed=seed if self.knockoffs else None,
            subset_index=subset_index,
            device=self.device,
        )
        if n_kept < n_points:
            columns = np.r_[keep, keep + n_points] if self.knockoffs else keep
            X = X[:, torch.as_tensor(columns, device=X.device)]
        self.ame_scale_ = dsg.ame_scale(p, self.featurization_)
        units = dsg.fold_units(masks, fold_groups)
        weights, held_out = kfold_weights(m, self.n_folds, rng, strata=groups, units=units)
        cv, live_fit = cross_validate_live(self, X, Y, live, groups, weights, held_out)
        self.lambdas_, self.cv_mse_, self.cv_se_ = cv.lambdas, cv.cv_mse, cv.cv_se
        self.lambda_index_, self.n_steps_, self.path_truncated_ = cv.index, cv.n_steps, cv.truncated
        self.lambda_ = self.lambdas_[np.arange(Q), self.lambda_index_]
        self.lambda_at_path_end_ = self.path_truncated_ & (self.lambda_index_ == self.n_steps_ - 1)

        spread = functools.partial(dsg.scatter_columns, columns=keep, n_points=n_points)
        self.ame_ = spread(self.ame_scale_ * cv.coef[:, :n_kept])
        self.knockoff_ame_ = (
            spread(self.ame_scale_ * cv.coef[:, n_kept:]) if self.knockoffs else None
        )
        self.stderr_ = None
        if self.n_bootstrap:
            self.stderr_ = spread(np.zeros((Q, n_kept)))
            if live_fit is not None:
                boot = bootstrap_stderr(self, X, Y[:, live], groups, live_fit, rng, self.ame_scale_)
                self.stderr_[live] = spread(boot[:, :n_kept])
        fold = held_out.argmax(1)
        found = intervals.debiased(
            X[:, :n_kept],
            intervals.crossfit_residual(X, Y, cv.fold_coef, fold, groups),
            cv.fold_coef[:, :, :n_kept],
            groups,
            dsg.denominators(p, self.featurization_),
            fold,
            per_bucket=self.discrete_,
        )
        p_grid = np.unique(p) if self.discrete_ else None
        for name, value in intervals.attributes(
            found, self.degenerate_, constant, spread, self.ci_level, p_grid
        ).items():
            setattr(self, name, value)
        self.semivalue_ = estimand_name(design, self.featurization_)
        return self

    def select(self, fdr=None, direction="positive", knockoff_plus=None, rule=None) -> np.ndarray:
        """Points selected at a controlled false discovery rate, per query.

        Parameters
        ----------
        fdr : float, optional
            Target FDR q (default: the ``fdr`` given at construction).
        direction : {"positive", "negative"}
            "positive" selects points that raise the behaviour, "negative" those that lower it.
        knockoff_plus : bool, optional
            Knockoff+ (offset 1, controls the FDR) or Knockoff (offset 0); default: the
            ``knockoff_plus`` given at construction. Only for ``rule="knockoff"``.
        rule : {"knockoff", "bh"}, optional
            The knockoff filter on W = max(sβ, 0) − max(sβ̃, 0) (s = ±1 by direction), or
            Benjamini–Hochberg on the one-sided p-values of ``ame_debiased_``; default: the
            ``selection_rule`` given at construction. Knockoff+ warns (KnockoffPowerWarning)
            for queries with fewer than 1/q positive W, where it cannot select anything.

        Returns
        -------
        ndarray of bool, shape (n_queries, n_points)
            Never True for unidentifiable points or degenerate queries.
        """
        if not hasattr(self, "ame_"):
            raise ValueError("select: call fit before select")
        fdr = self.fdr if fdr is None else fdr
        rule = self.selection_rule if rule is None else rule
        knockoffs.check_selection(fdr, direction, rule)
        if rule == "bh":
            pvalues = knockoffs.one_sided_pvalues(self.ame_debiased_, self.ame_se_, direction)
            pvalues[self.degenerate_] = np.nan
            return knockoffs.bh_select(pvalues, fdr)
        if self.knockoff_ame_ is None:
            raise ValueError(
                "select: the estimator was fitted with knockoffs=False; refit with knockoffs=True"
                " or use rule='bh'"
            )
        plus = self.knockoff_plus if knockoff_plus is None else knockoff_plus
        W = knockoffs.knockoff_statistic(self.ame_, self.knockoff_ame_, direction)
        W[self.degenerate_] = 0.0
        if plus:
            knockoffs.warn_if_blind(W, fdr, self.degenerate_)
        return knockoffs.knockoff_select(W, fdr, plus)

    def knockoff_can_select(self, fdr=None, direction="positive") -> np.ndarray:
        """Whether Knockoff+ at ``fdr`` could select any point, per query, of shape (n_queries,)."""
        fdr = self.fdr if fdr is None else fdr
        knockoffs.check_selection(fdr, direction, "knockoff")
        W = knockoffs.knockoff_statistic(self.ame_, self.knockoff_ame_, direction)
        return knockoffs.knockoff_can_select(W, fdr) & ~self.degenerate_
