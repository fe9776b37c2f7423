"""The mislabel detector: exact values on a small game, its error rate on planted label noise."""

import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from ame.errors import UserError
from ame.estimation.mislabel import MislabelDetector, conformal_pvalues, out_of_subset_means


def test_out_of_subset_means_use_only_the_submodels_that_left_a_point_out():
    masks = np.array([[1, 0, 1], [0, 0, 1], [0, 1, 1]], dtype=bool)
    scores = np.array([[9.0, 1.0, 9.0], [0.0, 0.0, 9.0], [1.0, 9.0, 9.0]])
    mean, stderr, n_out = out_of_subset_means(masks, scores)
    assert n_out.tolist() == [2, 2, 0]
    assert mean[:2].tolist() == [0.5, 0.5]
    assert stderr[:2] == pytest.approx([0.5, 0.5])  # sd 1/sqrt(2) over 2 rows
    assert np.isnan(mean[2])


def test_conformal_pvalues_count_ties_against_the_point():
    calibration = np.array([0.2, 0.5, 0.5, 0.9])
    p = conformal_pvalues(np.array([0.1, 0.5, 1.0, np.nan]), calibration)
    assert p[:3].tolist() == [1 / 5, 4 / 5, 5 / 5]
    assert np.isnan(p[3])


def test_a_small_game_by_hand():
    # four subsets, three points; point 2 is in every subset (no value, never listed)
    masks = np.array([[0, 1, 1], [1, 0, 1], [0, 0, 1], [1, 1, 1]], dtype=bool)
    scores = np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    calibration = np.ones((4, 9))
    found = MislabelDetector(fdr=0.5, random_state=0).fit(masks, scores, calibration)
    assert found.value_[:2].tolist() == [0.0, 1.0]
    assert found.unidentifiable_.tolist() == [False, False, True]
    # calibration values are all 1 (or NaN on point 2's column): point 0 has p = 1/(n+1)
    n = int((~np.isnan(found.calibration_values_)).sum())
    assert found.pvalues_[0] == pytest.approx(1 / (n + 1))
    assert found.pvalues_[1] == 1.0
    assert found.selected_.tolist() == [True, False, False]
    assert found.relabel_order_.tolist() == [0]
    table = found.table()
    assert table["point"].tolist() == [0, 1, 2]  # the listed point first, then by value
    assert table["listed"].tolist() == [True, False, False]
    assert table["n_out"].tolist() == [2, 2, 0]


def planted_game(rng, n_points=200, n_calibration=200, n_subsets=300, noise=0.1):
    """Submodels that predict a clean point's label with its own probability θ ~ Beta(6, 1) when
    it is out of their subset and always when in; a flipped label with 1 − θ (two classes)."""
    p = rng.choice([0.2, 0.4, 0.6, 0.8], size=n_subsets)
    masks = rng.random((n_subsets, n_points)) < p[:, None]
    theta = rng.beta(6, 1, size=n_points)
    flipped = rng.random(n_points) < noise
    own = np.where(flipped, 1 - theta, theta)
    scores = np.where(masks, 1.0, rng.random((n_subsets, n_points)) < own).astype(float)
    calibration = (rng.random((n_subsets, n_calibration)) < rng.beta(6, 1, n_calibration)) * 1.0
    return masks, scores, calibration, flipped


def error_rate_and_power(fdr: float, replicates: int = 300) -> tuple[float, float]:
    rng = np.random.default_rng(7)
    fdp, power = [], []
    for replicate in range(replicates):
        masks, scores, calibration, flipped = planted_game(rng)
        found = MislabelDetector(fdr=fdr, random_state=replicate)
        listed = found.fit(masks, scores, calibration).selected_
        fdp.append((listed & ~flipped).sum() / max(listed.sum(), 1))
        power.append((listed & flipped).sum() / max(flipped.sum(), 1))
    return float(np.mean(fdp)), float(np.mean(power))


def test_the_relabel_list_keeps_its_false_discovery_rate_and_finds_the_flips():
    fdr, power = error_rate_and_power(0.1)
    assert fdr <= 0.1
    assert power >= 0.5


def test_the_same_check_fails_at_twice_the_rate():
    fdr, _ = error_rate_and_power(0.2)
    assert fdr > 0.1


def test_the_list_and_its_expected_clean_points():
    game = planted_game(np.random.default_rng(1), n_points=1000, n_calibration=1000)
    masks, scores, calibration, flipped = game
    found = MislabelDetector(fdr=0.1, random_state=0).fit(masks, scores, calibration)
    listed = np.flatnonzero(found.selected_)
    assert listed.size >= found.min_list_
    assert found.value_[found.relabel_order_].tolist() == sorted(found.value_[listed])
    assert 0 < found.expected_clean_ <= 0.1 * listed.size
    assert found.clean_share_ == pytest.approx(1 - flipped.mean(), abs=0.05)
    assert ((found.ci_low_ <= found.value_) & (found.value_ <= found.ci_high_)).all()


def test_too_few_calibration_points_say_how_long_a_list_must_be():
    masks, scores, calibration, _ = planted_game(np.random.default_rng(2), n_calibration=9)
    found = MislabelDetector(fdr=0.1, random_state=0).fit(masks, scores, calibration)
    assert found.min_list_ == 200  # p ≥ 1/10, so BH needs all 200 points at the floor
    assert not found.selected_.any()


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        (lambda m, s, c: (m, s[:, :-1], c), "scores"),
        (lambda m, s, c: (m, s, c[:-1]), "calibration_scores"),
        (lambda m, s, c: (m, s, c[:, :0]), "calibration_scores"),
        (lambda m, s, c: (m, np.where(s == 1, np.nan, s), c), "scores"),
    ],
)
def test_bad_input_names_its_culprit(change, culprit):
    masks, scores, calibration, _ = planted_game(np.random.default_rng(3), 20, 5, 10)
    with pytest.raises(UserError, match=f"^{culprit}:"):
        MislabelDetector().fit(*change(masks, scores, calibration))


@pytest.mark.slow
def test_the_how_to_runs_as_printed_and_says_what_it_prints(tmp_path):
    """The block of docs/how-to/mislabels.md, run in a fresh interpreter, prints the line the
    page quotes."""
    page = (REPO / "docs" / "how-to" / "mislabels.md").read_text()
    block = page.split("```python\n", 1)[1].split("```", 1)[0]
    done = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    printed = done.stdout.strip().splitlines()[-1]
    assert f"It prints `{printed}`" in page
