import numpy as np
import pytest

from ame.estimation import AMEEstimator
from ame.estimation.design import denominators, featurize
from ame.estimation.intervals import crossfit_residual, debiased
from ame.estimation.semivalues import estimand_weights, exact_semivalue
from ame.sampling import Design, sample_subsets

pytestmark = pytest.mark.usefixtures("single_thread")
N_POINTS = 8


def nonlinear(masks):
    """Two behaviours with saturation and interactions (as in test_estimator)."""
    x = masks.astype(float)
    z = x @ np.linspace(-1.0, 1.0, x.shape[1])
    return np.stack([np.tanh(z) + 0.5 * x[:, 0] * x[:, 1], x[:, 2] / (1 + np.exp(1 - z))], 1)


@pytest.mark.parametrize("featurization", ["inverse", "centered"])
def test_debiased_matches_a_loop_over_rows(featurization):
    """The batched, chunked sums against the definition written as plain loops."""
    rng = np.random.default_rng(0)
    m, N, Q, K = 90, 7, 2, 3
    masks, p = sample_subsets(N, m, design="grid", seed=0)
    groups = np.unique(p, return_inverse=True)[1]
    X = featurize(masks, p, N, featurization, knockoff_seed=1)  # real and knockoff columns
    Y = rng.standard_normal((m, Q)) + masks[:, :2] @ [[1.0, 0.0], [0.5, 2.0]]
    fold = np.arange(m) % K
    coef = rng.standard_normal((K, Q, 2 * N)) * (rng.random((K, Q, 2 * N)) < 0.4)
    d = denominators(p, featurization)
    residual = crossfit_residual(X, Y, coef, fold, groups)
    found = debiased(X[:, :N], residual, coef[:, :, :N], groups, d, fold, per_bucket=True)
    Xd = X.double().numpy()
    for q in range(Q):
        r = np.empty(m)
        for k in range(K):
            res = Y[:, q] - Xd @ coef[k, q]
            train = fold != k
            for i in np.flatnonzero(fold == k):
                r[i] = res[i] - res[train & (groups == groups[i])].mean()
        np.testing.assert_allclose(residual[:, q], r, atol=1e-10)
        for n in range(N):
            z = np.array([Xd[i, n] * (r[i] + Xd[i, n] * coef[fold[i], q, n]) for i in range(m)])
            theta = z.sum() / d.sum()
            psi = (z - theta * d) / d.mean()
            np.testing.assert_allclose(found.estimate[q, n], theta, rtol=1e-10)
            np.testing.assert_allclose(found.stderr[q, n], psi.std(ddof=1) / np.sqrt(m), rtol=1e-8)
            for g in range(groups.max() + 1):
                rows = groups == g
                theta_g = z[rows].sum() / d[rows].sum()
                se_g = (z[rows] - theta_g * d[rows]).std(ddof=1) / d[rows].mean()
                np.testing.assert_allclose(found.per_p[g, q, n], theta_g, rtol=1e-10)
                np.testing.assert_allclose(
                    found.per_p_se[g, q, n], se_g / np.sqrt(rows.sum()), rtol=1e-8
                )


def test_weighted_banzhaf_value_at_every_p_matches_exact_values():
    """AME(L_p) at each p of the grid, and their mean, within 5 standard errors of the exact
    semivalues of a non-linear game (2^8 subsets enumerated); 16 values per p."""
    design = Design("grid")
    masks, p = sample_subsets(N_POINTS, 4000, design=design, seed=1)
    Y = nonlinear(masks)
    est = AMEEstimator(knockoffs=False, n_folds=5).fit(masks, p, Y, design=design)
    np.testing.assert_allclose(est.p_grid_, design.p_values)
    assert est.ame_per_p_.shape == est.ame_per_p_se_.shape == (4, 2, N_POINTS)
    spread = []
    for g, value in enumerate(design.p_values):
        weights = estimand_weights(Design("fixed", p=value), N_POINTS, "inverse")
        exact = exact_semivalue(nonlinear, N_POINTS, weights)
        assert np.all(np.abs(est.ame_per_p_[g] - exact) <= 5 * est.ame_per_p_se_[g])
        assert np.all(est.ame_per_p_ci_low_[g] < est.ame_per_p_[g])
        spread.append(exact)
    # the values differ across p by far more than the intervals: the test can fail
    assert (np.ptp(spread, axis=0) > 10 * est.ame_per_p_se_.max(0)).any()
    exact = exact_semivalue(nonlinear, N_POINTS, estimand_weights(design, N_POINTS, "inverse"))
    assert np.all(np.abs(est.ame_debiased_ - exact) <= 5 * est.ame_se_)
    assert est.ame_se_.max() < 0.1 * np.abs(exact).max()


@pytest.mark.parametrize("design", [Design("uniform"), Design("shapley", eps=0.05)])
def test_debiased_estimates_match_exact_semivalues_of_continuous_designs(design):
    masks, p = sample_subsets(N_POINTS, 4000, design=design, seed=2)
    est = AMEEstimator(knockoffs=False, n_folds=5).fit(masks, p, nonlinear(masks), design=design)
    assert est.p_grid_ is None and est.ame_per_p_ is None
    weights = estimand_weights(design, N_POINTS, est.featurization_)
    exact = exact_semivalue(nonlinear, N_POINTS, weights)
    assert np.all(np.abs(est.ame_debiased_ - exact) <= 5 * est.ame_se_)
    z = (est.ame_debiased_ - exact) / est.ame_se_
    assert np.all((est.ci_low_ <= exact) == (z <= 1.96))


def test_a_point_constant_at_one_p_has_no_value_there():
    masks, p = sample_subsets(20, 400, design="grid", seed=0)
    masks[p == 0.8, 2] = True  # point 2 is in every subset at p = 0.8
    y = masks[:, 2] * 0.5 + 0.1 * np.random.default_rng(0).standard_normal(400)
    est = AMEEstimator(knockoffs=False, n_folds=5).fit(masks, p, y, design=Design("grid"))
    assert not est.unidentifiable_[2]
    assert np.isnan(est.ame_per_p_[3, 0, 2]) and np.isfinite(est.ame_per_p_[:3, 0, 2]).all()
    assert np.all(np.abs(est.ame_per_p_[:3, 0, 2] - 0.5) <= 4 * est.ame_per_p_se_[:3, 0, 2])
