import warnings

import numpy as np
import pytest

from ame.estimation.active_set import ConvergenceWarning
from ame.estimation.estimator import AMEEstimator
from ame.estimation.semivalues import estimand_weights, exact_semivalue
from ame.sampling import Design, pack_masks, sample_subsets

N_POINTS = 8
LEAST_SQUARES = {"lambda_rule": 0.0, "knockoffs": False, "n_lambdas": 8, "n_folds": 3}


pytestmark = pytest.mark.usefixtures("single_thread")


def nonlinear(masks):
    """Two behaviours with saturation and interactions: no semivalue is a coefficient of them."""
    x = masks.astype(float)
    z = x @ np.linspace(-1.0, 1.0, x.shape[1])
    return np.stack([np.tanh(z) + 0.5 * x[:, 0] * x[:, 1], x[:, 2] / (1 + np.exp(1 - z))], 1)


def sandwich_stderr(masks, p, Y, featurization, groups, ame_scale):
    """Heteroskedasticity-robust standard errors of the least-squares AMEs (FWL on the buckets)."""
    inside, outside = (1 / p, -1 / (1 - p)) if featurization == "inverse" else (1 - p, -p)
    X = np.where(masks, inside[:, None], outside[:, None])
    onehot = np.eye(groups.max() + 1)[groups]
    center = lambda A: A - onehot @ np.linalg.lstsq(onehot, A, rcond=None)[0]  # noqa: E731
    Xc, Yc = center(X), center(Y)
    bread = np.linalg.inv(Xc.T @ Xc)
    beta = bread @ Xc.T @ Yc
    se = []
    for q in range(Y.shape[1]):
        e = Yc[:, q] - Xc @ beta[:, q]
        se.append(np.sqrt(np.diag(bread @ (Xc.T * e**2) @ Xc @ bread)))
    return ame_scale * beta.T, ame_scale * np.array(se)


def deciles(p):
    edges = np.quantile(p, np.linspace(0, 1, 11)[1:-1])
    return np.searchsorted(edges, p, side="right")


CASES = [
    (Design("grid"), "auto"),
    (Design("fixed", p=0.5), "auto"),
    (Design("uniform"), "auto"),
    (Design("shapley", eps=0.05), "auto"),
    (Design("beta", beta_a=2.0, beta_b=0.5), "auto"),
    (Design("beta", beta_a=2.0, beta_b=2.0), "inverse"),  # estimand P* = P itself
]


@pytest.mark.parametrize(("design", "featurization"), CASES, ids=lambda c: getattr(c, "name", c))
def test_least_squares_estimates_match_exact_semivalues(design, featurization):
    """|AME estimate - exact semivalue| <= 5 robust standard errors, for a non-linear behaviour.

    With m = 4,000 subsets and no training noise the only error is the sampling of subsets; its
    standard error (about sigma / sqrt(m)) comes from the sandwich formula, computed here
    independently of the estimator. Five standard errors over 16 values: a false alarm has
    probability below 1e-4, while a wrong estimand (e.g. Shapley vs Beta(2, 2)) is off by 4-40 SE.
    """
    masks, p = sample_subsets(N_POINTS, 4000, design=design, seed=1)
    Y = nonlinear(masks)
    est = AMEEstimator(featurization=featurization, **LEAST_SQUARES).fit(masks, p, Y, design=design)
    exact = exact_semivalue(
        nonlinear, N_POINTS, estimand_weights(design, N_POINTS, est.featurization_)
    )
    groups = np.unique(p, return_inverse=True)[1] if design.is_discrete else deciles(p)
    ols, se = sandwich_stderr(masks, p, Y, est.featurization_, groups, est.ame_scale_)
    if design.is_discrete:  # same buckets as the estimator: λ = 0 is ordinary least squares
        np.testing.assert_allclose(est.ame_, ols, atol=1e-4 * np.abs(ols).max())
    assert np.all(np.abs(est.ame_ - exact) <= 5 * se)
    assert se.max() < 0.1 * np.abs(exact).max()  # the tolerance is tight enough to mean something


def test_estimand_matters():
    """The same data is far from the semivalue of another design: the test above can fail."""
    design = Design("uniform")
    masks, p = sample_subsets(N_POINTS, 4000, design=design, seed=1)
    est = AMEEstimator(**LEAST_SQUARES).fit(masks, p, nonlinear(masks), design=design)
    shapley = exact_semivalue(nonlinear, N_POINTS, estimand_weights(design, N_POINTS, "inverse"))
    assert np.abs(est.ame_ - shapley).max() > 0.02


def test_bootstrap_stderr_agrees_with_sandwich():
    design = Design("grid")
    masks, p = sample_subsets(N_POINTS, 3000, design=design, seed=2)
    Y = nonlinear(masks)
    est = AMEEstimator(n_bootstrap=200, **LEAST_SQUARES).fit(masks, p, Y)
    _, se = sandwich_stderr(
        masks, p, Y, "inverse", np.unique(p, return_inverse=True)[1], est.ame_scale_
    )
    assert est.stderr_.shape == (2, N_POINTS)
    np.testing.assert_allclose(est.stderr_, se, rtol=0.25)


def test_planted_linear_effects_are_recovered():
    rng = np.random.default_rng(0)
    n, k = 200, 5
    masks, p = sample_subsets(n, 1000, design="grid", seed=0)
    planted = rng.choice(n, k, replace=False)
    true = np.zeros(n)
    true[planted] = rng.uniform(0.3, 0.6, k)
    Y = masks @ true + 0.5 * p + 0.3 * rng.standard_normal(len(p))
    est = AMEEstimator(lambda_rule="min", knockoffs=False, n_folds=5, n_lambdas=50).fit(masks, p, Y)
    assert set(np.argsort(-est.ame_[0])[:k]) == set(planted)
    np.testing.assert_allclose(est.ame_[0, planted], true[planted], atol=0.08)
    assert np.abs(np.delete(est.ame_[0], planted)).max() < 0.08
    assert est.lambdas_.shape == est.cv_mse_.shape == est.cv_se_.shape
    assert est.lambda_[0] == est.lambdas_[0, est.lambda_index_[0]]


def test_tiny_budget_prefix_has_finite_cross_validation_errors():
    """17 subsets in 10 folds, 200 columns (a budget-curve prefix): ties between the columns make
    2 × 2 Grams whose top eigenvector is (1, −1), which once gave FISTA too long a step, NaN
    held-out errors in a fold and a crash in the λ choice."""
    masks, p = sample_subsets(100, 17, design="grid", seed=0)
    rng = np.random.default_rng(0)
    Y = masks @ rng.normal(0, 0.01, (100, 4)) + p[:, None] + 0.1 * rng.standard_normal((17, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est = AMEEstimator(n_folds=10, random_state=0).fit(masks, p, Y)
    solved = ~np.isnan(est.cv_mse_)  # NaN only after a query stopped (patience)
    assert solved[:, 0].all() and (np.diff(solved.astype(int), axis=1) <= 0).all()
    assert np.isfinite(est.cv_se_[solved]).all()
    assert np.isfinite(est.ame_).all() and np.isfinite(est.knockoff_ame_).all()


def test_one_behaviour_packed_masks_and_seeds():
    masks, p = sample_subsets(30, 300, design="grid", seed=0)
    y = masks[:, 4] * 0.5 + 0.1 * np.random.default_rng(0).standard_normal(300)
    kwargs = {"n_folds": 4, "n_lambdas": 20}
    est = AMEEstimator(**kwargs).fit(masks, p, y)
    assert est.ame_.shape == est.knockoff_ame_.shape == (1, 30)
    assert est.lambda_.shape == (1,) and est.stderr_ is None
    packed = AMEEstimator(**kwargs).fit(pack_masks(masks), p, y, n_points=30)
    np.testing.assert_array_equal(est.ame_, packed.ame_)
    other = AMEEstimator(random_state=1, **kwargs).fit(masks, p, y)
    assert not np.array_equal(est.cv_mse_, other.cv_mse_)  # other folds
    assert est.ame_[0].argmax() == 4 and est.featurization_ == "inverse"
    assert est.semivalue_ == "mean of AME(L_p) over the sampled p"


def test_auto_featurization_follows_the_number_of_distinct_p():
    masks, p = sample_subsets(10, 200, design="shapley", seed=0)
    est = AMEEstimator(n_folds=3, n_lambdas=10, knockoffs=False).fit(masks, p, masks[:, 0] * 1.0)
    assert est.featurization_ == "centered" and est.ame_scale_ == 1.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"p": np.full(50, 0.5)[:-1]}, "p:"),
        ({"p": np.r_[np.full(49, 0.5), 1.0]}, "p:"),
        ({"p": np.r_[np.full(49, 0.5), 0.0]}, "p:"),
        ({"Y": np.zeros(49)}, "Y:"),
        ({"Y": np.r_[np.zeros(49), np.nan]}, "Y:"),
        ({"Y": np.zeros((50, 2, 2))}, "Y:"),
        ({"masks": np.zeros((50, 6), dtype=np.int64)}, "masks:"),
        ({"masks": np.zeros(50, dtype=bool)}, "masks:"),
        ({"masks": np.zeros((50, 1), dtype=np.uint8)}, "n_points"),
        ({"masks": np.zeros((50, 2), dtype=np.uint8), "n_points": 6}, "masks:"),
        ({"n_points": 7}, "n_points"),
    ],
)
def test_bad_data_names_the_argument(change, match):
    args = {
        "masks": np.zeros((50, 6), dtype=bool),
        "p": np.full(50, 0.5),
        "Y": np.zeros(50),
        "n_points": None,
    }
    args.update(change)
    with pytest.raises(ValueError, match=match):
        AMEEstimator().fit(args["masks"], args["p"], args["Y"], n_points=args["n_points"])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"featurization": "log"}, "featurization"),
        ({"lambda_rule": "cv"}, "lambda_rule"),
        ({"lambda_rule": 1.5}, "lambda_rule"),
        ({"n_folds": 1}, "n_folds"),
        ({"n_folds": 2.5}, "n_folds"),
        ({"n_lambdas": 1}, "n_lambdas"),
        ({"lambda_min_ratio": 0.0}, "lambda_min_ratio"),
        ({"fdr": -0.1}, "fdr"),
        ({"n_bootstrap": -1}, "n_bootstrap"),
        ({"tol": 0}, "tol"),
        ({"n_folds": 60}, "n_folds"),
        ({"lambda_rule": 0.0, "knockoffs": True}, "lambda_rule"),
        ({"selection_rule": "holm"}, "selection_rule"),
        ({"ci_level": 1.0}, "ci_level"),
        ({"ci_level": True}, "ci_level"),
        ({"robust": "huber"}, "robust"),
        ({"outlier_z": 0}, "outlier_z"),
    ],
)
def test_bad_parameters_name_the_parameter(params, match):
    masks, p = sample_subsets(30, 50, design="grid", seed=0)
    with pytest.raises(ValueError, match=match):
        AMEEstimator(**params).fit(masks, p, np.zeros(50))
