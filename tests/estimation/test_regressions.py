"""Regression tests of issue 13: each failed on the estimator as it was before the issue.

They use only the public API (``AMEEstimator``, ``sample_subsets``) so that they run, and fail,
against the old code too.
"""

import warnings

import numpy as np
import pytest

from ame.estimation import AMEEstimator
from ame.sampling import Design, sample_subsets

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("m", [40, 50])
@pytest.mark.parametrize("name", ["uniform", "shapley"])
def test_continuous_design_with_few_subsets_is_not_zeroed(m, name):
    """Defect 1: ≤ 50 subsets of a continuous design made every p its own bucket: all AMEs 0."""
    design = Design(name, eps=0.05) if name == "shapley" else Design(name)
    masks, p = sample_subsets(40, m, design=design, seed=0)
    y = 2.0 * masks[:, 0] + 1.0 * masks[:, 1]
    y = y + 0.3 * np.random.default_rng(0).standard_normal(m)
    est = AMEEstimator(knockoffs=False, n_folds=5).fit(masks, p, y, design=design)
    assert est.featurization_ == "centered" and not est.discrete_
    assert est.ame_[0].argmax() == 0 and est.ame_[0, 0] > 1.0
    assert abs(est.ame_debiased_[0, 0] - 2.0) < 4 * est.ame_se_[0, 0]
    unplanted = AMEEstimator(knockoffs=False, n_folds=5).fit(masks, p, y)  # no design: bins
    assert not unplanted.discrete_ and unplanted.ame_[0].argmax() == 0


def test_discrete_design_refuses_buckets_too_small_or_off_the_grid():
    masks, p = sample_subsets(10, 40, design="grid", seed=0)
    y = masks[:, 0] * 1.0
    p_one = p.copy()
    p_one[(p == 0.2).nonzero()[0][1:]] = 0.4  # a single row left at p = 0.2
    with pytest.raises(ValueError, match=r"p: the bucket p = 0.2 holds 1 subset"):
        AMEEstimator(n_folds=3).fit(masks, p_one, y, design=Design("grid"))
    p_off = p.copy()
    p_off[0] = 0.5
    with pytest.raises(ValueError, match=r"p: the grid design has p in .* got p = 0.5"):
        AMEEstimator(n_folds=3).fit(masks, p_off, y, design=Design("grid"))


@pytest.mark.parametrize("random_state", [1, 5, 0])
def test_a_small_bucket_is_in_every_training_fold(random_state):
    """Defect 2: 200 grid rows plus two at p = 0.5, shifted by +10. With random folds both extra
    rows could fall in one fold (seeds 1 and 5 did): its held-out rows were scored against an
    uncentred y, the CV error jumped and λ_1se zeroed every AME."""
    masks, p = sample_subsets(30, 200, design="grid", seed=0)
    extra, _ = sample_subsets(30, 2, design=Design("fixed", p=0.5), seed=5)
    masks, p = np.r_[masks, extra], np.r_[p, [0.5, 0.5]]
    beta = np.zeros(30)
    beta[:3] = [0.81, 0.44, 0.20]
    y = masks @ beta + 5 * p + 0.1 * np.random.default_rng(1).standard_normal(len(p))
    y[-2:] += 10
    est = AMEEstimator(knockoffs=False, n_folds=5, random_state=random_state).fit(masks, p, y)
    assert est.discrete_ and est.cv_se_[0, est.lambda_index_[0]] < 0.1
    np.testing.assert_allclose(est.ame_[0, :3], [0.75, 0.38, 0.12], atol=0.05)


def test_truncated_path_is_recorded():
    """Defect 3: a path cut by max_active left only a warning."""
    rng = np.random.default_rng(0)
    n, k = 150, 60
    masks, p = sample_subsets(n, 400, design="grid", seed=0)
    true = np.zeros(n)
    true[rng.choice(n, k, replace=False)] = rng.uniform(0.3, 0.6, k)
    Y = np.c_[masks @ true, 0.5 * masks[:, 0]] + 0.3 * rng.standard_normal((400, 2))
    kwargs = {"knockoffs": False, "n_folds": 4, "n_lambdas": 40}
    with pytest.warns(UserWarning, match="max_active"):
        est = AMEEstimator(max_active=40, **kwargs).fit(masks, p, Y)
    # both paths stop; the dense query's λ_1se is its last step, the sparse one's lies before
    assert est.path_truncated_.tolist() == [True, True]
    assert est.lambda_at_path_end_.tolist() == [True, False]
    assert est.n_steps_[0] < 40 and est.n_steps_[0] == est.lambda_index_[0] + 1
    free = AMEEstimator(**kwargs).fit(masks, p, Y)
    assert not free.path_truncated_.any() and free.n_steps_[0] > est.n_steps_[0]


@pytest.mark.statistical
def test_intervals_cover_planted_linear_effects():
    """Defect 4: ame_ ± 1.96 stderr_ covered 0.22 of the non-zero effects at λ_1se."""
    cover_nonzero, cover_zero = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        masks, p = sample_subsets(50, 600, design="grid", seed=seed)
        true = np.zeros((20, 50))
        for q in range(20):
            true[q, rng.choice(50, 5, replace=False)] = np.linspace(0.2, 0.5, 5)
        Y = masks @ true.T + 0.5 * rng.standard_normal((600, 20))
        est = AMEEstimator(random_state=seed).fit(masks, p, Y)
        inside = (est.ci_low_ <= true) & (true <= est.ci_high_)
        cover_nonzero.append(inside[true != 0])
        cover_zero.append(inside[true == 0])
    # 300 and 2,700 intervals: a true coverage of 0.95 is above these bounds by > 3 SE
    assert np.concatenate(cover_nonzero).mean() >= 0.9
    assert np.concatenate(cover_zero).mean() >= 0.93


def test_degenerate_behaviours_are_flagged_not_selected():
    """Defect 5: constant and p-only behaviours (λ_max ≈ 1e-17) gave selections from rounding."""
    masks, p = sample_subsets(60, 300, design="grid", seed=0)
    rng = np.random.default_rng(0)
    const = np.tile(rng.uniform(0, 1, 20), (300, 1))
    p_only = 1 / (1 + np.exp(-rng.uniform(1, 5, 20) * p[:, None]))
    real = 0.5 * masks[:, 3] + 0.1 * rng.standard_normal(300)
    Y = np.c_[const, p_only, real]
    est = AMEEstimator(n_folds=5, n_lambdas=30).fit(masks, p, Y)
    assert est.degenerate_.tolist() == [True] * 40 + [False]
    assert (est.ame_[:40] == 0).all() and (est.ame_debiased_[:40] == 0).all()
    assert (est.ci_low_[:40] == 0).all() and (est.ci_high_[:40] == 0).all()
    for rule in ("knockoff", "bh"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            chosen = est.select(fdr=0.5, knockoff_plus=False, rule=rule)
        assert not chosen[:40].any() and chosen[40, 3]


def test_outliers_are_counted_and_the_robust_option_resists_them():
    """Defect 6: one behaviour of +200 among 600 emptied the fit without a word."""
    rng = np.random.default_rng(3)
    masks, p = sample_subsets(100, 600, design="grid", seed=3)
    planted = rng.choice(100, 5, replace=False)
    y = masks[:, planted] @ np.linspace(0.2, 0.5, 5) + 0.3 * rng.standard_normal(600)
    y[17] += 200
    kwargs = {"knockoffs": False, "n_folds": 5, "n_lambdas": 40}
    with pytest.warns(UserWarning, match=r"Y: queries \[0\] have \[1\] values beyond 10 robust"):
        plain = AMEEstimator(**kwargs).fit(masks, p, y)
    robust = AMEEstimator(robust="winsorize", **kwargs).fit(masks, p, y)
    assert plain.n_outliers_.tolist() == robust.n_outliers_.tolist() == [1]
    assert set(np.argsort(-robust.ame_[0])[:5]) == set(planted)
    assert set(np.argsort(-plain.ame_[0])[:5]) != set(planted)  # what the option buys


def test_points_in_every_subset_or_none_are_not_identifiable():
    """Defect 7: always-in and always-out points got numbers (centred: −2.42, selectable)."""
    rng = np.random.default_rng(0)
    design = Design("uniform")
    masks, p = sample_subsets(30, 400, design=design, seed=0)
    masks[:, 5], masks[:, 6] = True, False
    y = 0.8 * masks[:, 0] + 0.3 * rng.standard_normal(400)
    est = AMEEstimator(n_folds=5, n_lambdas=30).fit(masks, p, y, design=design)
    assert est.unidentifiable_.nonzero()[0].tolist() == [5, 6]
    for name in ("ame_", "knockoff_ame_", "ame_debiased_", "ame_se_", "ci_low_", "pvalues_"):
        values = getattr(est, name)[0]
        assert np.isnan(values[[5, 6]]).all() and np.isfinite(np.delete(values, [5, 6])).all()
    for direction in ("positive", "negative"):
        for rule in ("knockoff", "bh"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                chosen = est.select(fdr=0.9, direction=direction, knockoff_plus=False, rule=rule)
            assert not chosen[0, [5, 6]].any()
    assert np.nanargmax(est.ame_[0]) == 0
