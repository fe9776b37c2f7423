"""Two-stage designs: the screen's rule by hand, the run plan's budgets and streams, and the
second stage's selection, which keeps its false discovery rate whatever the screen picked."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from quality import assert_fdr_controlled, false_discovery_proportions

import ame
from ame.errors import UserError
from ame.estimation.knockoffs import KnockoffPowerWarning
from ame.estimation.results import Estimates
from ame.pipeline import params
from ame.pipeline.plan import candidates, experiment, kinds, levels, second_stage, stage_budgets
from ame.sampling import STREAMS, MaskSet
from ame.sampling.stages import screen_candidates


def test_candidates_are_the_largest_signed_z_over_queries_by_hand():
    ids = np.array([10, 11, 12, 13, 14])
    debiased = np.array([[4.0, 1.0, -6.0, 0.0, np.nan], [0.5, 3.0, 0.0, 2.0, 1.0]])
    se = np.array([[2.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 1.0, 4.0]])
    # z: query 0 (2, 1, -6, 0, nan), query 1 (0.5, 3, nan: se 0, 2, 0.25); best: (2, 3, -6, 2, .25)
    np.testing.assert_array_equal(screen_candidates(debiased, se, ids, "positive", 0.4), [10, 11])
    # a tie at z = 2 between ids 10 and 13 goes to the lower id
    np.testing.assert_array_equal(
        screen_candidates(debiased, se, ids, "positive", 0.6), [10, 11, 13]
    )
    # negative: signed z (-2, 6, 0, ...) -> id 12 first; ceil(0.2 * 5) = 1 candidate
    np.testing.assert_array_equal(screen_candidates(debiased, se, ids, "negative", 0.2), [12])
    # no finite z at all (id 14 in query 0, id 12 in query 1) ranks after every finite one
    everything = screen_candidates(debiased, se, ids, "positive", 1.0)
    np.testing.assert_array_equal(everything, ids)


def staged(**stages) -> dict:
    return params.complete({"sampling": {"n_subsets": 300}, "stages": {"enabled": True, **stages}})


def test_the_stages_share_the_budget_and_draw_from_streams_no_other_experiment_uses():
    config = staged(screen_share=0.3)
    assert levels(config) == ["screen", "points"]
    assert stage_budgets(config) == {"screen": 90, "points": 210}
    screen, points = experiment(config, "screen", "main", 500), experiment(config, "points")
    assert (screen.budget, points.budget) == (90, 210)
    # the screen is the plain run's first subsets; the second stage and its held-out subsets
    # have streams of their own
    assert screen.stream == STREAMS["points"]
    assert points.stream == STREAMS["candidates"] and not points.reads
    held_out = experiment(config, "points", "validation")
    assert held_out.stream == STREAMS["validation_candidates"]
    assert kinds(config, "screen") == ["main"] and "validation" in kinds(config, "points")
    # with the others in, the rows follow the screen's estimate
    assert experiment(staged(others="in"), "points").reads == (("screen", "estimates.npz"),)


def screen_of(debiased: np.ndarray) -> Estimates:
    """Screen estimates with unit standard errors: the z-statistics are the debiased AMEs."""
    n_queries, n_units = debiased.shape
    zero = np.zeros((n_queries, n_units))
    return Estimates(
        zero, None, zero > 0, np.zeros(n_queries), ["q"] * n_queries, "banzhaf",
        np.arange(n_units), inference={"ame_debiased": debiased, "ame_se": np.ones_like(zero)},
    )  # fmt: skip


def test_the_second_stage_varies_the_candidates_on_its_own_stream(tmp_path):
    config = staged(candidates=0.1)
    debiased = np.zeros((2, 50))
    debiased[0, [3, 7, 11]], debiased[1, [40, 41]] = 5.0, 4.0
    chosen = candidates(config, screen_of(debiased))
    np.testing.assert_array_equal(chosen, [3, 7, 11, 40, 41])
    plain = experiment(config, "points").draw(config, 50)
    # others sampled: the rows are the second stage's whatever the candidates; only the
    # regression's columns follow the screen, and they survive the artifact
    sampled = second_stage(config, 50, chosen)
    assert sampled.n_subsets == plain.n_subsets and sampled.stream == STREAMS["candidates"]
    np.testing.assert_array_equal(sampled.packed, plain.packed)
    sampled.save(tmp_path / "masks.npz")
    loaded = MaskSet.load(tmp_path / "masks.npz")
    np.testing.assert_array_equal(loaded.column_ids, chosen)
    np.testing.assert_array_equal(loaded.column_masks([1, 2]), plain.masks[[1, 2]][:, chosen])
    # others in: one column per candidate, every other point in every subset
    inside = second_stage(staged(candidates=0.1, others="in"), 50, chosen, "validation")
    assert inside.stream == STREAMS["validation_candidates"]
    np.testing.assert_array_equal(inside.column_ids, chosen)
    points = np.stack([inside.point_mask(i) for i in range(inside.n_subsets)])
    assert points[:, np.setdiff1d(np.arange(50), chosen)].all()
    np.testing.assert_array_equal(points[:, chosen], inside.column_masks())


def test_too_few_candidates_for_the_folds_is_an_error_naming_the_setting():
    config = staged(candidates=0.01)  # 1 of 50 points: 2 distinct subsets for 10 folds
    with pytest.raises(UserError, match=r"^stages.candidates: 0.01 of 50 points keeps 1 "):
        candidates(config, screen_of(np.ones((1, 50))))


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"hierarchy": {"enabled": True}, "dataset": {"n_sources": 20}}, "stages.enabled: a hier"),
        ({"sampling": {"n_subsets": None}}, "stages.enabled: needs sampling.n_subsets >= 2"),
        ({"stages": {"enabled": True, "others": "out"}}, "stages.others: 'out' is not allowed"),
    ],
)
def test_bad_stage_settings_are_one_line_naming_the_key(settings, message):
    base = {"sampling": {"n_subsets": 300}, "stages": {"enabled": True}}
    with pytest.raises(params.ParamsError, match=message):
        params.complete(params.merge(base, settings))


# -- the selection after a screen ---------------------------------------------------------------
N_POINTS, N_QUERIES, K = 150, 30, 12


def planted_game(seed: int):
    """30 queries, each raised by 0.6 by 12 of 20 active points (its own draw) among 150, plus
    unit noise: as in a backdoor, a few points drive many queries, each a query's own way."""
    rng = np.random.default_rng(1000 + seed)
    active = rng.choice(N_POINTS, 20, replace=False)
    true = np.zeros((N_QUERIES, N_POINTS))
    for q in range(N_QUERIES):
        true[q, rng.choice(active, K, replace=False)] = 0.6

    def train_fn(indices, seed):
        noise = np.random.default_rng(seed).standard_normal(N_QUERIES)
        return true[:, indices].sum(axis=1) + noise

    return train_fn, true


@pytest.mark.statistical
@pytest.mark.parametrize("others", ["sampled", "in"])
def test_the_second_stages_selection_controls_the_fdr_over_360_planted_replicates(others):
    """12 games x 30 queries: the screen (300 subsets) keeps 40% of the points; the second stage
    (300 fresh subsets) selects by Knockoff+ at q = 0.1. The mean FDP over the candidates stays
    within q + 0.03, a bound a true FDR of 2q fails (``assert_fdr_controlled``)."""
    fdp, power = [], []
    for seed in range(12):
        train_fn, true = planted_game(seed)
        settings = {
            "training": {"seed_policy": "per_subset"},
            "stages": {"enabled": True, "candidates": 0.4, "others": others},
            "estimation": {"n_bootstrap": 0, "n_folds": 5, "n_lambdas": 40},
        }
        run = ame.AMEExperiment(600, random_state=seed, params=settings, progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KnockoffPowerWarning)
            run.fit(train_fn, N_POINTS)
        assert run.estimates_.ids.tolist() == run.candidates_.tolist()
        truth = true[:, run.candidates_]  # the second stage's columns
        fdp.append(false_discovery_proportions(run.estimates_.selected, truth))
        power.append((run.estimates_.selected & (truth > 0)).sum(1) / K)
    assert_fdr_controlled(fdp, 0.1, 0.03)
    assert np.mean(power) > 0.3  # not vacuous: the screen kept planted points and they are found
