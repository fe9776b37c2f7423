import numpy as np
import pytest
import torch
from sklearn.linear_model import LassoCV
from sklearn.linear_model import lasso_path as sk_lasso_path

from ame.estimation.active_set import ConvergenceWarning
from ame.estimation.cv import kfold_weights, sparse_to_dense
from ame.estimation.design import fold_units
from ame.estimation.estimator import AMEEstimator
from ame.estimation.fista import _fista
from ame.estimation.solver import (
    center,
    column_scale,
    lambda_max,
    lasso_path,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def problem(m=150, P=40, Q=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, P))
    B = np.zeros((P, Q))
    B[:4] = rng.uniform(0.5, 1.5, (4, Q))
    Y = X @ B + rng.standard_normal((m, Q))
    return X, Y


def dense_path(result, n_features):
    return np.stack(
        [
            sparse_to_dense(i, c, n_features)
            for i, c in zip(result.path_index, result.path_coef, strict=True)
        ]
    )


def grid(X, Y, groups=None, n=15, ratio=0.02):
    lam = lambda_max(torch.tensor(X), torch.tensor(Y), groups)
    return lam[None, :] * torch.tensor(np.geomspace(1, ratio, n))[:, None]


def test_path_matches_sklearn_lasso_path():
    X, Y = problem()
    lambdas = grid(X, Y)
    res = lasso_path(
        torch.tensor(X), torch.tensor(Y), torch.ones(len(X), 1), lambdas, keep_path=0, tol=1e-9
    )
    ours = dense_path(res, X.shape[1])
    for q in range(Y.shape[1]):
        _, coefs, _ = sk_lasso_path(
            X - X.mean(0),
            Y[:, q] - Y[:, q].mean(),
            alphas=lambdas[:, q].numpy(),
            tol=1e-12,
            max_iter=100_000,
        )
        np.testing.assert_allclose(ours[:, q].T, coefs, atol=1e-6)


def test_buckets_equal_within_bucket_centering():
    """Unpenalized bucket indicators = LASSO on data centered inside each bucket (FWL)."""
    X, Y = problem(seed=1)
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 4, len(X))
    X = X + groups[:, None] * 0.7  # bucket-dependent column means
    Y = Y + 2.0 * groups[:, None]  # and a bucket-dependent baseline
    lambdas = grid(X, Y, torch.tensor(groups))
    res = lasso_path(
        torch.tensor(X),
        torch.tensor(Y),
        torch.ones(len(X), 1),
        lambdas,
        groups=torch.tensor(groups),
        keep_path=0,
        tol=1e-9,
    )
    ours = dense_path(res, X.shape[1])
    means = lambda A: np.stack([A[groups == g].mean(0) for g in range(4)])[groups]  # noqa: E731
    Xc, Yc = X - means(X), Y - means(Y)
    for q in range(Y.shape[1]):
        _, coefs, _ = sk_lasso_path(
            Xc, Yc[:, q], alphas=lambdas[:, q].numpy(), tol=1e-12, max_iter=100_000
        )
        np.testing.assert_allclose(ours[:, q].T, coefs, atol=1e-6)


def test_integer_weights_equal_repeated_rows_and_scale_is_penalty_scale():
    X, Y = problem(m=80, P=20, Q=1, seed=2)
    counts = np.random.default_rng(2).integers(0, 3, len(X))
    scale = np.linspace(0.5, 2.0, X.shape[1])
    lambdas = grid(X, Y, ratio=0.1, n=8)
    res = lasso_path(
        torch.tensor(X),
        torch.tensor(Y),
        torch.tensor(counts[:, None], dtype=torch.float64),
        lambdas,
        scale=torch.tensor(scale),
        keep_path=0,
        tol=1e-10,
    )
    rows = np.repeat(np.arange(len(X)), counts)
    Xr, yr = X[rows] / scale, Y[rows, 0]
    _, coefs, _ = sk_lasso_path(
        Xr - Xr.mean(0), yr - yr.mean(), alphas=lambdas[:, 0].numpy(), tol=1e-12
    )
    np.testing.assert_allclose(
        dense_path(res, X.shape[1])[:, 0].T, coefs / scale[:, None], atol=1e-6
    )


def test_cross_validation_matches_lassocv():
    X, Y = problem(m=200, P=60, Q=2, seed=3)
    n_folds = 5
    weights, held_out = kfold_weights(len(X), n_folds, np.random.default_rng(0))
    lambdas = grid(X, Y, n=30, ratio=0.01)
    res = lasso_path(
        torch.tensor(X),
        torch.tensor(Y),
        torch.tensor(weights),
        lambdas,
        held_out=torch.tensor(held_out),
        keep_path=n_folds,
        tol=1e-9,
    )
    splits = [
        (np.flatnonzero(~held_out[:, k]), np.flatnonzero(held_out[:, k])) for k in range(n_folds)
    ]
    for q in range(Y.shape[1]):
        cv = LassoCV(alphas=lambdas[:, q].numpy(), cv=splits, tol=1e-12, max_iter=100_000).fit(
            X, Y[:, q]
        )
        np.testing.assert_allclose(res.cv_mse[:, :, q], cv.mse_path_, rtol=1e-6)
        best = res.cv_mse[:, :, q].mean(1).argmin()
        assert lambdas[best, q].item() == pytest.approx(cv.alpha_)
        np.testing.assert_allclose(
            sparse_to_dense(res.path_index[best], res.path_coef[best], 60)[q], cv.coef_, atol=1e-6
        )


def test_lambda_max_is_the_first_zero():
    X, Y = problem(seed=4)
    lam = lambda_max(torch.tensor(X), torch.tensor(Y))
    lambdas = torch.stack([lam, 0.99 * lam])
    res = lasso_path(
        torch.tensor(X), torch.tensor(Y), torch.ones(len(X), 1), lambdas, keep_path=0, tol=1e-10
    )
    coefs = dense_path(res, X.shape[1])
    assert np.all(coefs[0] == 0)
    assert np.all((coefs[1] != 0).sum(1) == 1)


def test_column_scale_is_pooled_within_bucket_std():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((90, 6))
    X[:, 5] = 3.0
    groups = np.arange(90) % 3
    X[:, 4] = groups  # constant inside buckets
    scale = column_scale(torch.tensor(X), torch.tensor(groups)).numpy()
    centered = X - np.stack([X[groups == g].mean(0) for g in range(3)])[groups]
    np.testing.assert_allclose(scale[:4], centered[:, :4].std(0))
    np.testing.assert_array_equal(scale[4:], 1.0)


def test_kfold_weights_hold_out_each_row_once():
    weights, held_out = kfold_weights(23, 4, np.random.default_rng(0))
    assert weights.shape == (23, 5) and held_out.shape == (23, 4)
    np.testing.assert_array_equal(held_out.sum(1), 1)
    np.testing.assert_array_equal(weights[:, :4], ~held_out)
    np.testing.assert_array_equal(weights[:, 4], 1)


def test_kfold_weights_stratify_buckets_and_keep_identical_subsets_together():
    rng = np.random.default_rng(0)
    strata = np.r_[np.zeros(40, int), np.ones(3, int), np.full(17, 2)]  # a bucket of 3 rows
    units = np.arange(60)
    units[45:50] = 45  # five copies of one subset
    for seed in range(20):
        _, held_out = kfold_weights(60, 5, np.random.default_rng(seed), strata, units)
        fold = held_out.argmax(1)
        for g in range(3):  # every bucket with >= 2 units is in every training fold
            assert all((fold[strata == g] != k).any() for k in range(5))
        assert np.unique(fold[45:50]).size == 1  # copies never straddle folds
        counts = np.bincount(fold, minlength=5)
        assert counts.max() - counts.min() <= 6  # balanced up to the block of copies
    with pytest.raises(ValueError, match="n_folds: 5 folds need as many distinct subsets"):
        kfold_weights(6, 5, rng, units=np.array([0, 0, 1, 1, 2, 3]))


def test_held_out_rows_of_a_bucket_missing_from_training_use_the_fold_mean():
    """A fold whose training rows miss a bucket scores it against the training mean of y."""
    y = np.array([0.0, 2.0, 4.0, 10.0, 11.0])[:, None, None]
    onehot = torch.tensor(np.eye(2)[[0, 0, 0, 1, 1]], dtype=torch.float64)
    weights = torch.tensor([[1.0, 1.0, 1.0, 0.0, 0.0]], dtype=torch.float64).T  # bucket 1 out
    centred = center(torch.tensor(y), weights, onehot)[:, 0, 0].numpy()
    np.testing.assert_allclose(centred, [-2.0, 0.0, 2.0, 8.0, 9.0])


def test_patience_stops_the_path_after_the_minimum():
    X, Y = problem(seed=6)
    weights, held_out = kfold_weights(len(X), 5, np.random.default_rng(0))
    lambdas = grid(X, Y, n=60, ratio=1e-3)
    res = lasso_path(
        torch.tensor(X),
        torch.tensor(Y),
        torch.tensor(weights),
        lambdas,
        held_out=torch.tensor(held_out),
        patience=5,
    )
    cv = res.cv_mse.mean(1)  # (n_steps, n_queries), NaN once a query has stopped
    last = (~np.isnan(cv)).sum(0) - 1  # each query's last step
    assert len(res.lambdas) < 60 and len(res.lambdas) == last.max() + 1
    np.testing.assert_array_equal(np.nanargmin(cv, axis=0), last - 5)
    assert np.all(np.isnan(cv[last.min() + 1 :, last.argmin()]))


def test_max_active_stops_before_the_step_that_exceeds_it():
    X, Y = problem(seed=8)
    lambdas = grid(X, Y, n=30, ratio=1e-3)
    with pytest.warns(UserWarning, match="max_active=6"):
        res = lasso_path(
            torch.tensor(X),
            torch.tensor(Y),
            torch.ones(len(X), 1),
            lambdas,
            keep_path=0,
            max_active=6,
        )
    assert 1 < len(res.lambdas) < 30 and len(res.path_index) == len(res.lambdas)
    assert res.final_index.shape[-1] <= 6


def test_float32_design_and_iteration_limit_warning():
    X, Y = problem(seed=7)
    lambdas = grid(X, Y, n=5, ratio=0.05)
    ref = lasso_path(torch.tensor(X), torch.tensor(Y), torch.ones(len(X), 1), lambdas, tol=1e-8)
    single = lasso_path(
        torch.tensor(X, dtype=torch.float32),
        torch.tensor(Y),
        torch.ones(len(X), 1),
        lambdas,
        tol=1e-8,
    )
    np.testing.assert_allclose(
        sparse_to_dense(single.final_index, single.final_coef, 40),
        sparse_to_dense(ref.final_index, ref.final_coef, 40),
        atol=1e-5,
    )
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        lasso_path(
            torch.tensor(X), torch.tensor(Y), torch.ones(len(X), 1), lambdas, tol=1e-12, max_iter=5
        )


def test_gram_with_equal_diagonal_and_negative_correlation():
    """Its top eigenvector is (1, −1): a power iteration started from all ones stays on (1, 1),
    the smaller eigenvalue, and the too long FISTA step diverged to a NaN fit, reported as
    converged (NaN > tol is False)."""
    rng = np.random.default_rng(0)
    a, z = rng.standard_normal((2, 40))
    a, z = a - a.mean(), z - z.mean()
    z -= (z @ a) / (a @ a) * a
    X = np.stack([a, -0.6 * a + 0.8 * z * np.linalg.norm(a) / np.linalg.norm(z)], 1)
    Y = X @ [[1.0], [-1.0]] + 0.1 * rng.standard_normal((40, 1))
    lambdas = grid(X, Y, n=10, ratio=0.01)
    res = lasso_path(torch.tensor(X), torch.tensor(Y), torch.ones(40, 1), lambdas, tol=1e-9)
    _, coefs, _ = sk_lasso_path(
        X, Y[:, 0] - Y[:, 0].mean(), alphas=lambdas[-1:, 0].numpy(), tol=1e-12
    )
    ours = sparse_to_dense(res.final_index, res.final_coef, 2)[0, 0]
    np.testing.assert_allclose(ours, coefs[:, 0], atol=1e-6)


def test_fista_shortens_a_step_that_overshoots_the_curvature():
    """A stalled power iteration can report the smallest eigenvalue as L; FISTA must recover."""
    H = torch.tensor([[[1.0, -0.6], [-0.6, 1.0]]], dtype=torch.float64)
    b, lam = torch.tensor([[1.0, -0.5]], dtype=torch.float64), torch.full((1, 1), 0.01).double()
    step = torch.full((1, 1), 1 / (1.05 * 0.4), dtype=torch.float64)  # L: the small eigenvalue
    tol = torch.tensor([1e-10], dtype=torch.float64)
    x, step, converged = _fista(H, b, torch.zeros(1, 2, dtype=torch.float64), lam, step, tol, 1000)
    assert converged and step.item() * 1.6 < 1.1  # was 3.8, past the divergence bound 2
    expected = torch.linalg.solve(H[0], b[0] - lam[0])  # both coefficients positive
    np.testing.assert_allclose(x[0], expected, atol=1e-9)


def test_sparse_to_dense_keeps_column_zero_under_padding():
    index = np.array([[0, 3, 0], [2, 0, 0]])
    coef = np.array([[1.5, 2.0, 0.0], [4.0, 0.0, 0.0]])
    np.testing.assert_array_equal(
        sparse_to_dense(index, coef, 4), [[1.5, 0, 0, 2.0], [0, 0, 4.0, 0]]
    )


def test_fold_units_join_identical_subsets_and_fold_groups_transitively():
    masks = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [0, 0]], bool)
    np.testing.assert_array_equal(fold_units(masks), [0, 1, 0, 2, 3])
    # rows 0-1 and 2-3 are pairs; 0 and 2 are the same subset: one unit of four rows
    np.testing.assert_array_equal(fold_units(masks, [7, 7, 3, 3, 9]), [0, 0, 0, 0, 1])
    with pytest.raises(ValueError, match=r"fold_groups: expected shape \(5,\)"):
        fold_units(masks, [0, 1])


def test_the_estimator_keeps_a_subset_and_its_complement_in_one_fold(monkeypatch):
    from ame.estimation import estimator as module

    rng = np.random.default_rng(0)
    half = rng.random((60, 30)) < 0.5
    masks = np.empty((120, 30), bool)
    masks[0::2], masks[1::2] = half, ~half  # antithetic pairs
    Y = masks[:, :3].sum(1) + 0.1 * rng.standard_normal(120)
    seen = {}

    def spy(*args, **kwargs):
        weights, seen["held_out"] = kfold_weights(*args, **kwargs)
        return weights, seen["held_out"]

    monkeypatch.setattr(module, "kfold_weights", spy)
    AMEEstimator(n_folds=5, n_bootstrap=0, knockoffs=False, random_state=0).fit(
        masks, np.full(120, 0.5), Y, fold_groups=np.arange(120) // 2
    )
    fold = seen["held_out"].argmax(1)
    np.testing.assert_array_equal(fold[0::2], fold[1::2])
