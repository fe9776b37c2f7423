import os
import stat

import numpy as np
import pytest
from scipy import stats

from ame.sampling import (
    Design,
    MaskSet,
    budget_from_sparsity,
    pack_masks,
    sample_subsets,
    unpack_masks,
)


def test_prefix_stability_growing_budget_keeps_earlier_subsets_bit_identical():
    small_masks, small_p = sample_subsets(300, 20, seed=7)
    big_masks, big_p = sample_subsets(300, 50, seed=7)
    np.testing.assert_array_equal(small_masks, big_masks[:20])
    np.testing.assert_array_equal(small_p, big_p[:20])
    tail_masks, tail_p = sample_subsets(300, 30, seed=7, start=20)
    np.testing.assert_array_equal(tail_masks, big_masks[20:])


def test_same_seed_same_masks_other_seed_other_masks():
    a, _ = sample_subsets(200, 10, seed=1)
    b, _ = sample_subsets(200, 10, seed=1)
    c, _ = sample_subsets(200, 10, seed=2)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any()


def test_grid_design_draws_each_value_uniformly_and_masks_follow_p():
    masks, p = sample_subsets(2000, 4000, design="grid", seed=0)
    values, counts = np.unique(p, return_counts=True)
    np.testing.assert_allclose(values, [0.2, 0.4, 0.6, 0.8])
    assert stats.chisquare(counts).pvalue > 1e-3
    for value in values:
        rows = masks[p == value]
        assert abs(rows.mean() - value) < 0.005


def test_fixed_design_uses_one_p():
    _, p = sample_subsets(50, 100, design="fixed", p=0.5, seed=0)
    assert set(p) == {0.5}


@pytest.mark.parametrize(
    ("design", "cdf"),
    [
        (Design("uniform"), stats.uniform().cdf),
        (Design("beta", beta_a=2.0, beta_b=5.0), stats.beta(2.0, 5.0).cdf),
        # shapley: logit(p) is uniform on [logit(eps), logit(1 - eps)]
        (Design("shapley", eps=0.05), None),
    ],
)
def test_continuous_designs_follow_their_distribution(design, cdf):
    _, p = sample_subsets(10, 3000, design=design, seed=3)
    if cdf is None:
        lo, hi = np.log(0.05 / 0.95), np.log(0.95 / 0.05)
        assert p.min() >= 0.05 and p.max() <= 0.95
        p, cdf = np.log(p / (1 - p)), stats.uniform(lo, hi - lo).cdf
    assert stats.kstest(p, cdf).pvalue > 1e-3


def test_budget_rule_and_keyword_budget():
    assert budget_from_sparsity(49_970, 8, 20) == 2497  # the paper's CIFAR10-20 budget
    masks, _ = sample_subsets(1024, c=2, k=3, seed=0)
    assert masks.shape == (60, 1024)


def test_pack_round_trip_and_artifact(tmp_path):
    masks, p = sample_subsets(1003, 17, seed=5)
    np.testing.assert_array_equal(unpack_masks(pack_masks(masks), 1003), masks)
    artifact = MaskSet(pack_masks(masks), p, 1003, Design("grid"), 5)
    artifact.save(tmp_path / "masks.npz")
    loaded = MaskSet.load(tmp_path / "masks.npz")
    np.testing.assert_array_equal(loaded.masks, masks)
    np.testing.assert_array_equal(loaded.point_mask(4), masks[4])
    assert loaded.design == Design("grid") and loaded.seed == 5
    np.testing.assert_array_equal(loaded.head(3).masks, masks[:3])


def test_artifacts_get_the_permissions_of_a_plain_new_file(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the result must follow the umask instead."""
    old = os.umask(0o022)
    try:
        MaskSet.draw(10, 2, Design("grid"), 0).save(tmp_path / "masks.npz")
        plain = tmp_path / "plain"
        plain.write_text("")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "masks.npz").stat().st_mode)
    assert mode == stat.S_IMODE(plain.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"design": "grd"}, "unknown design"),
        ({"design": "grid", "p_values": (0.2, 1.0)}, "p_values"),
        ({"design": "fixed", "p": 0.0}, "p: must lie in"),
        ({"design": "shapley", "eps": 0.5}, "eps"),
        ({"design": "beta", "beta_a": -1.0}, "beta_a"),
    ],
)
def test_bad_designs_name_the_setting(kwargs, message):
    with pytest.raises(ValueError, match=message):
        sample_subsets(10, 5, **kwargs)


def test_bad_budgets_are_refused():
    with pytest.raises(ValueError, match="n_subsets"):
        sample_subsets(10, 0)
    with pytest.raises(ValueError, match="c and k"):
        sample_subsets(10, c=-1, k=2)
    with pytest.raises(ValueError, match="not both"):
        sample_subsets(10, 5, c=1, k=2)
