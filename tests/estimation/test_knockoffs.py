import numpy as np
import pytest

from ame.estimation.design import featurize
from ame.estimation.estimator import AMEEstimator
from ame.estimation.knockoffs import knockoff_threshold
from ame.sampling import pack_masks, sample_subsets

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(
    ("W", "fdr", "offset", "expected"),
    [
        # t=0.5: (1 + 1)/5 = 0.4 > 0.2; t=1: (1 + 0)/5 = 0.2 <= 0.2
        ([5, 4, 3, 2, 1, -0.5], 0.2, 1, 1.0),
        # Knockoff (offset 0) already qualifies at t=0.5: (0 + 1)/5 = 0.2
        ([5, 4, 3, 2, 1, -0.5], 0.2, 0, 0.5),
        # Knockoff+ with three discoveries can never reach 1/3 > 0.3: nothing selected
        ([3, 2, 1], 0.3, 1, np.inf),
        ([3, 2, 1], 0.3, 0, 1.0),
        # zeros are not candidate thresholds; t=2: (1 + 0)/4 = 0.25 <= 0.25
        ([0, 0, 2, 3, 4, 5, -1], 0.25, 1, 2.0),
        ([1, -1], 0.1, 1, np.inf),
        ([0, 0, 0], 0.5, 0, np.inf),
        # a tie at the threshold counts on both sides: t=2: (1 + 1)/4 = 0.5
        ([2, 2, 3, 4, -2], 0.5, 1, 2.0),
    ],
)
def test_threshold_hand_computed(W, fdr, offset, expected):
    assert knockoff_threshold(np.array(W, dtype=float), fdr, offset) == expected


def test_knockoffs_of_a_prefix_are_the_prefix():
    masks, p = sample_subsets(37, 40, design="grid", seed=3)
    full = featurize(pack_masks(masks), p, 37, "inverse", knockoff_seed=11)
    head = featurize(masks[:16], p[:16], 37, "inverse", knockoff_seed=11)
    np.testing.assert_array_equal(full[:16].numpy(), head.numpy())
    rows = np.array([3, 7, 30])  # rows keep their knockoffs when others are missing
    kept = featurize(masks[rows], p[rows], 37, "inverse", knockoff_seed=11, subset_index=rows)
    np.testing.assert_array_equal(full[rows].numpy(), kept.numpy())
    fake = full[:, 37:].numpy() > 0
    assert not np.array_equal(fake, masks)
    assert abs(fake.mean() - masks.mean()) < 0.05


def planted_fit(random_state, n_points=60, n_subsets=500, n_queries=30, k=12, scale=0.6):
    rng = np.random.default_rng(100 + random_state)
    masks, p = sample_subsets(n_points, n_subsets, design="grid", seed=random_state)
    true = np.zeros((n_queries, n_points))
    for q in range(n_queries):
        true[q, rng.choice(n_points, size=k, replace=False)] = scale * rng.uniform(0.5, 1.0, k)
    Y = masks @ true.T + rng.standard_normal((n_subsets, n_queries))
    est = AMEEstimator(n_folds=5, n_lambdas=40, random_state=random_state).fit(masks, p, Y)
    return est, true


def false_discovery_proportions(selected, true):
    false = (selected & (true == 0)).sum(1)
    return false / np.maximum(selected.sum(1), 1)


@pytest.mark.parametrize(("k", "scale"), [(0, 0.0), (12, 0.6)], ids=["null", "planted"])
def test_knockoff_plus_controls_fdr(k, scale):
    """Mean FDP over 3 seeds x 30 queries <= q + 0.05.

    Each FDP lies in [0, 1]; 0.05 is about three standard errors of a mean of 90 such proportions
    (sd <= 0.3 at this sparsity), so a correct filter fails this test with probability ~0.1%.
    Knockoff+ at q = 0.1 needs at least 10 selections to select anything, hence 12 planted points.
    """
    fdp, power = [], []
    for seed in range(3):
        est, true = planted_fit(seed, k=k, scale=scale)
        selected = est.select(fdr=0.1)
        fdp.append(false_discovery_proportions(selected, true))
        power.append((selected & (true > 0)).sum(1) / max(k, 1))
    assert np.mean(fdp) <= 0.1 + 0.05
    if k:
        assert np.mean(power) > 0.5  # the filter is not vacuous


def test_negative_direction_selects_harmful_points():
    rng = np.random.default_rng(0)
    masks, p = sample_subsets(60, 500, design="grid", seed=1)
    Y = 0.5 * masks[:, 3] - 0.5 * masks[:, 7] + 0.2 * rng.standard_normal(500)
    est = AMEEstimator(n_folds=5, n_lambdas=40).fit(masks, p, Y)
    positive = est.select(fdr=0.5, knockoff_plus=False)[0]
    negative = est.select(fdr=0.5, direction="negative", knockoff_plus=False)[0]
    assert positive[3] and not positive[7]
    assert negative[7] and not negative[3]


def test_select_arguments():
    masks, p = sample_subsets(20, 100, design="grid", seed=0)
    Y = masks[:, 0].astype(float)
    est = AMEEstimator(n_folds=3, n_lambdas=10).fit(masks, p, Y)
    with pytest.raises(ValueError, match="direction"):
        est.select(direction="up")
    with pytest.raises(ValueError, match="fdr"):
        est.select(fdr=1.5)
    plain = AMEEstimator(n_folds=3, n_lambdas=10, knockoffs=False).fit(masks, p, Y)
    assert plain.knockoff_ame_ is None
    with pytest.raises(ValueError, match="knockoffs=True"):
        plain.select()
    with pytest.raises(ValueError, match="fit"):
        AMEEstimator().select()
