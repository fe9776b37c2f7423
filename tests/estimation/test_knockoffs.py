import functools
import warnings

import numpy as np
import pytest
from quality import assert_fdr_controlled, false_discovery_proportions

from ame.estimation.design import featurize
from ame.estimation.estimator import AMEEstimator
from ame.estimation.knockoffs import KnockoffPowerWarning, bh_select, knockoff_threshold
from ame.sampling import STREAMS, pack_masks, sample_subsets
from ame.sampling.streams import knockoff_rng

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


@functools.cache
def planted_fit(random_state, k=12, scale=0.6, lambda_rule="1se", knockoffs=True):
    """60 points, 500 grid subsets, 30 queries with k planted effects each (fresh per query)."""
    n_points, n_subsets, n_queries = 60, 500, 30
    rng = np.random.default_rng(100 + random_state)
    masks, p = sample_subsets(n_points, n_subsets, design="grid", seed=random_state)
    true = np.zeros((n_queries, n_points))
    for q in range(n_queries):
        true[q, rng.choice(n_points, size=k, replace=False)] = scale * rng.uniform(0.5, 1.0, k)
    Y = masks @ true.T + rng.standard_normal((n_subsets, n_queries))
    est = AMEEstimator(
        n_folds=5,
        n_lambdas=40,
        lambda_rule=lambda_rule,
        knockoffs=knockoffs,
        random_state=random_state,
    ).fit(masks, p, Y)
    return est, true


FDR_CASES = {
    # planted: 12 effects among 60 points (Knockoff+ at q = 0.1 needs 10 selections)
    "planted-1se": ((12, 0.6, "1se"), 0.1, 0.03),
    # λ_min admits many more noise columns: every query could select (W > 0 on >= 10 points)
    "planted-min": ((12, 0.6, "min"), 0.1, 0.03),
    # global null at λ = 0.3 λ_max: noise columns enter, so the filters could select; FDP = 1
    # whenever anything is selected, so the FDR is the chance of any selection
    "null-fixed": ((0, 0.0, 0.3), 0.2, 0.07),
}


@pytest.mark.statistical
@pytest.mark.parametrize("case", sorted(FDR_CASES))
@pytest.mark.parametrize("rule", ["knockoff", "bh"])
def test_selection_controls_fdr(case, rule):
    """Mean FDP over 12 independent designs x 30 queries (360 replicates) <= q + margin."""
    setting, fdr, margin = FDR_CASES[case]
    fdp, power, could = [], [], []
    for seed in range(12):
        est, true = planted_fit(seed, *setting)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KnockoffPowerWarning)
            selected = est.select(fdr=fdr, rule=rule)
        fdp.append(false_discovery_proportions(selected, true))
        power.append((selected & (true > 0)).sum(1) / max(setting[0], 1))
        could.append(est.knockoff_can_select(fdr))
    assert_fdr_controlled(fdp, fdr, margin)
    assert np.mean(could) > 0.85  # the filter had something to select from
    if setting[0]:
        assert np.mean(power) > 0.5  # and is not vacuous


@pytest.mark.statistical
def test_bh_controls_fdr_under_the_global_null_at_the_default_rule():
    """BH needs no knockoffs: 24 designs x 30 null queries at λ_1se; FDR = P(any selection)."""
    fdp = []
    for seed in range(24):
        est, true = planted_fit(seed, 0, 0.0, "1se", False)
        fdp.append(false_discovery_proportions(est.select(fdr=0.2, rule="bh"), true))
    assert_fdr_controlled(fdp, 0.2, 0.07)
    assert np.concatenate(fdp).mean() > 0.05  # BH at the null is not silent: p-values uniform


def test_knockoff_plus_warns_when_q_asks_for_more_than_is_selectable():
    est, true = planted_fit(0, 3, 1.0)  # 3 strong effects: at most ~3 W > 0, 1/q = 10
    with pytest.warns(KnockoffPowerWarning, match="needs at least 10 points"):
        selected = est.select(fdr=0.1)
    assert not selected.any() and not est.knockoff_can_select(0.1).any()
    assert est.knockoff_can_select(0.5).all()
    found = est.select(fdr=0.1, rule="bh")
    assert (found & (true > 0)).sum() >= 0.9 * (true > 0).sum()  # BH finds them


def test_bh_hand_computed():
    # sorted p: .001 .008 .039 .041 .27 ; BH at .05 with 5 tests: k=2 (.008 <= .02; .039 > .03;
    # .041 > .04; step-up takes the largest k with p_(k) <= qk/n: k=2)
    pvalues = np.array([[0.041, 0.001, 0.27, 0.039, 0.008]])
    assert bh_select(pvalues, 0.05).tolist() == [[False, True, False, False, True]]
    # a NaN (unidentifiable point) is neither a test nor a selection: 4 tests, .039 <= .05*3/4
    pvalues = np.array([[0.041, 0.001, np.nan, 0.039, 0.008]])
    assert bh_select(pvalues, 0.05).tolist() == [[True, True, False, True, True]]


@pytest.mark.parametrize("stream", sorted({*STREAMS.values(), *range(8)}))
def test_no_sampling_stream_reproduces_the_knockoffs(stream):
    """Knockoffs once came from subset_rng(seed, i, stream=1): sampling stream 1 equalled them."""
    masks, p = sample_subsets(64, 30, design="fixed", p=0.5, seed=7, stream=stream)
    fake = featurize(masks, p, 64, "inverse", knockoff_seed=7)[:, 64:].numpy() > 0
    assert not (fake == masks).all(1).any()  # no row equals its knockoff
    assert abs((fake == masks).mean() - 0.5) < 0.05  # they agree like independent masks
    direct = np.stack([knockoff_rng(7, i).random(64) < 0.5 for i in range(30)])
    np.testing.assert_array_equal(fake, direct)


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
    with pytest.raises(ValueError, match="rule"):
        est.select(rule="holm")
    plain = AMEEstimator(n_folds=3, n_lambdas=10, knockoffs=False).fit(masks, p, Y)
    assert plain.knockoff_ame_ is None
    with pytest.raises(ValueError, match="knockoffs=True"):
        plain.select()
    assert plain.select(rule="bh").shape == (1, 20)  # BH needs no knockoffs
    with pytest.raises(ValueError, match="fit"):
        AMEEstimator().select()
